//! Conditions that keep their transition time while their status holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What a condition should say now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(type_: &'static str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self { type_, status, reason: sanitize_reason(reason), message: message.into() }
    }
}

/// The condition for `desired`, keeping the previous `lastTransitionTime` when the status
/// did not change.
pub fn condition(previous: &[Condition], desired: Desired, generation: Option<i64>, now: Time) -> Condition {
    let status = if desired.status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == desired.type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: desired.type_.to_string(),
        status: status.to_string(),
        reason: desired.reason,
        message: desired.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The previous condition of `type_`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A reason the API server accepts: CamelCase letters, digits and `_`, starting with a
/// letter, at most 1024 characters.
pub fn sanitize_reason(reason: &str) -> String {
    let cleaned: String = reason.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(1024).collect();
    match cleaned.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => cleaned.trim_end_matches('_').to_string(),
        _ => "Unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let first = condition(&[], Desired::new("Ready", false, "WorkerNotAvailable", "waiting"), Some(1), t0.clone());
        assert_eq!(first.last_transition_time, t0);
        let same =
            condition(std::slice::from_ref(&first), Desired::new("Ready", false, "Other", "m"), Some(2), t1.clone());
        assert_eq!(same.last_transition_time, t0);
        assert_eq!(same.observed_generation, Some(2));
        let flipped = condition(&[first], Desired::new("Ready", true, "WorkerAvailable", "ok"), Some(2), t1.clone());
        assert_eq!(flipped.last_transition_time, t1);
        assert_eq!(flipped.status, "True");
    }

    #[test]
    fn reasons_are_made_acceptable() {
        assert_eq!(sanitize_reason("StorageUnavailable"), "StorageUnavailable");
        assert_eq!(sanitize_reason("storage unavailable!"), "storageunavailable");
        assert_eq!(sanitize_reason("9lives"), "Unknown");
        assert_eq!(sanitize_reason(""), "Unknown");
    }
}
