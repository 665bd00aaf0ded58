//! What every subscription store decides the same way for the consumer: which
//! webhooks an (app, event type) route lookup returns, and an endpoint's count of
//! deliveries that failed for good in a row (counted when a delivery is parked, reset
//! by a success, disabling the endpoint at a set count).

use crate::subscription::{EventFilter, Subscription};
use crate::EventType;

/// The route types ([`EventFilter::route_types`]) a lookup of `event_type`'s routes
/// reads: the type's own, and every type's (`None`).
pub fn route_lookup(event_type: &EventType) -> [Option<&EventType>; 2] {
    [Some(event_type), None]
}

/// Whether a lookup of `event_type`'s routes returns a webhook with filter `events`:
/// it is routed under that type or under every type (so `*` webhooks come back for
/// Herald's operational types too; delivery filters them out, `EventFilter::matches`).
pub fn routed_under(events: &EventFilter, event_type: &EventType) -> bool {
    let lookup = route_lookup(event_type);
    events.route_types().iter().any(|t| lookup.contains(t))
}

/// Why an endpoint is disabled after `count` deliveries in a row failed for good,
/// when `disable_after` (0: never) says it is.
pub fn disable_reason(count: u32, disable_after: u32) -> Option<String> {
    (disable_after > 0 && count >= disable_after)
        .then(|| format!("disabled automatically after {count} failed deliveries in a row"))
}

impl Subscription {
    /// Counts one more delivery that failed for good; the count now.
    pub fn count_failed_delivery(&mut self) -> u32 {
        self.consecutive_failures += 1;
        self.consecutive_failures
    }

    /// Resets the count after a success; whether it was above zero (the endpoint had
    /// failed and has recovered).
    pub fn reset_failures(&mut self) -> bool {
        let was_failing = self.consecutive_failures > 0;
        self.consecutive_failures = 0;
        was_failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::ObjectTypeFilter;
    use crate::AppId;

    fn t(s: &str) -> EventType {
        EventType::parse(s).unwrap()
    }

    fn filter(types: &[&str]) -> EventFilter {
        EventFilter::parse(types).unwrap()
    }

    #[test]
    fn a_lookup_returns_webhooks_listing_the_type_or_taking_every_type() {
        assert!(routed_under(&filter(&["invoice.paid"]), &t("invoice.paid")));
        assert!(!routed_under(
            &filter(&["invoice.paid"]),
            &t("invoice.sent")
        ));
        assert!(routed_under(&filter(&["*"]), &t("invoice.sent")));
        // Routed under every type, though `*` does not take operational types.
        let operational = t("herald.endpoint.disabled");
        assert!(routed_under(&filter(&["*"]), &operational));
        assert!(!filter(&["*"]).matches(&operational));
        assert!(routed_under(
            &filter(&["herald.endpoint.disabled"]),
            &operational
        ));
    }

    #[test]
    fn the_count_disables_at_the_setting_never_at_zero_and_a_success_resets_it() {
        let mut s = Subscription::new(
            AppId::parse("app").unwrap(),
            "https://example.com/hook",
            filter(&["*"]),
            ObjectTypeFilter::parse(&["*"]).unwrap(),
        );
        assert!(!s.reset_failures(), "nothing to reset");
        assert_eq!(s.count_failed_delivery(), 1);
        assert_eq!(disable_reason(1, 2), None);
        assert_eq!(s.count_failed_delivery(), 2);
        assert_eq!(
            disable_reason(2, 2).as_deref(),
            Some("disabled automatically after 2 failed deliveries in a row")
        );
        assert!(disable_reason(3, 2).is_some(), "past the setting");
        assert_eq!(disable_reason(1000, 0), None, "0: never");
        assert!(s.reset_failures());
        assert_eq!(s.consecutive_failures, 0);
    }
}
