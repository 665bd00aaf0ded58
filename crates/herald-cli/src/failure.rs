//! Why a command failed, and the exit code that says so.

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed: the API said no, a signature did not verify, a timeout.
pub const EXIT_FAILED: u8 = 1;
/// Usage error: bad flags (clap exits with 2 itself) or a missing setting.
pub const EXIT_USAGE: u8 = 2;
/// Herald's API or AWS could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Authentication or authorization failed (HTTP 401/403, AWS credentials).
pub const EXIT_AUTH: u8 = 4;

/// A failure with its exit code. Anything else that goes wrong exits with 1.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Auth(String),
    /// The command already told the user what happened; only the exit code is left.
    #[error("")]
    Reported(u8),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Self::Failed(_) => EXIT_FAILED,
            Self::Usage(_) => EXIT_USAGE,
            Self::Unreachable(_) => EXIT_UNREACHABLE,
            Self::Auth(_) => EXIT_AUTH,
            Self::Reported(code) => *code,
        }
    }
}

/// The exit code an error maps to: the first [`Failure`] in its chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(EXIT_FAILED, Failure::code)
}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Failure::Usage(msg.into()).into()
}

pub fn failed(msg: impl Into<String>) -> anyhow::Error {
    Failure::Failed(msg.into()).into()
}

/// AWS error codes that mean the credentials are missing, wrong or not allowed.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidSecurity",
    "MissingAuthenticationToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// Maps an SQS SDK error to a [`Failure`]: connection trouble exits with 3, credential
/// trouble with 4, anything SQS refused with 1.
pub fn sqs<E, R>(what: &str, endpoint: &str, e: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&e).to_string();
    let code = e.code().map(str::to_owned);
    if code.as_deref().is_some_and(|c| AUTH_CODES.contains(&c))
        || detail.to_ascii_lowercase().contains("credentials")
    {
        return Failure::Auth(format!(
            "{what}: AWS refused the credentials: {detail}\n\
             (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the local emulator takes any, e.g. test/test)"
        ))
        .into();
    }
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Failure::Unreachable(format!(
            "{what}: could not reach SQS at {endpoint}: {detail}\n\
             (is the emulator running? `herald up` starts one; AWS_ENDPOINT_URL selects it)"
        ))
        .into(),
        _ if code
            .as_deref()
            .is_some_and(|c| c.contains("NonExistentQueue")) =>
        {
            Failure::Failed(format!(
                "{what}: the queue does not exist: {detail}\n\
                 (check --queue-url / HERALD_EVENTS_QUEUE_URL, or run `herald up`)"
            ))
            .into()
        }
        _ => Failure::Failed(format!("{what}: {detail}")).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_in_the_chain_decides() {
        let e = anyhow::Error::from(Failure::Auth("no".into())).context("calling the API");
        assert_eq!(exit_code(&e), EXIT_AUTH);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), EXIT_FAILED);
        assert_eq!(exit_code(&usage("bad")), EXIT_USAGE);
        assert_eq!(
            exit_code(&Failure::Unreachable("x".into()).into()),
            EXIT_UNREACHABLE
        );
        assert_eq!(exit_code(&Failure::Reported(1).into()), EXIT_FAILED);
    }
}
