//! The names of the history's listings, which their cursors carry (in the DynamoDB
//! store and in memory alike): a cursor resumes only the listing it came from, what is
//! listed and under which filter; another listing's cursor is `BadCursor` (a 400).

use herald_core::{AppId, EventId, SubscriptionId};

use super::event_listing::EventQuery;
use super::filter::AttemptFilter;

/// What a history listing lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingScope<'a> {
    /// One webhook's attempts.
    Webhook(&'a AppId, &'a SubscriptionId),
    /// Every attempt of an app's webhooks.
    App(&'a AppId),
    /// One event's attempts.
    Event(&'a AppId, &'a EventId),
    /// An app's events.
    Events(&'a AppId),
}

impl ListingScope<'_> {
    /// The name of an attempt listing under `filter`.
    pub fn of_attempts(&self, filter: &AttemptFilter) -> String {
        self.named(&filter.fingerprint())
    }

    /// The name of an event listing under `query`.
    pub fn of_events(&self, query: &EventQuery) -> String {
        self.named(&query.fingerprint())
    }

    fn named(&self, fingerprint: &str) -> String {
        match self {
            Self::Webhook(app, sub) => format!("{app}#{sub}{fingerprint}"),
            Self::App(app) => format!("{app}#*{fingerprint}"),
            Self::Event(app, event) => format!("{app}#{event}{fingerprint}"),
            Self::Events(app) => format!("{app}#events{fingerprint}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_core::AttemptOutcome;

    use super::*;

    #[test]
    fn each_listing_and_each_filter_has_its_own_name() {
        let app = AppId::parse("shop").unwrap();
        let other = AppId::parse("bank").unwrap();
        let (sub, event) = (SubscriptionId::new("sub_1"), EventId::generate());
        let all = AttemptFilter::default();
        let failed = AttemptFilter {
            outcome: Some(AttemptOutcome::Failed),
            ..AttemptFilter::default()
        };
        let names = [
            ListingScope::Webhook(&app, &sub).of_attempts(&all),
            ListingScope::Webhook(&app, &sub).of_attempts(&failed),
            ListingScope::Webhook(&other, &sub).of_attempts(&all),
            ListingScope::App(&app).of_attempts(&all),
            ListingScope::App(&app).of_attempts(&failed),
            ListingScope::Event(&app, &event).of_attempts(&all),
            ListingScope::Events(&app).of_events(&EventQuery::default()),
        ];
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
    }
}
