//! A bounded sample of what went wrong, so a report can say "connection reset by peer ×120"
//! instead of only a count. Touched only on the failure path; memory is fixed by
//! [`MAX_DISTINCT_ERRORS`] per class and a cap on message length.

use super::Class;

/// Distinct messages kept per class; later new messages are only counted in `other`.
pub const MAX_DISTINCT_ERRORS: usize = 5;
/// Messages are cut to this many characters.
const MAX_MESSAGE: usize = 200;

/// One distinct message and how often it was seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ErrorSample {
    pub class: &'static str,
    pub message: String,
    pub count: u64,
}

/// The first distinct messages per class, with counts.
#[derive(Clone, Debug, Default)]
pub struct ErrorSamples {
    samples: Vec<ErrorSample>,
    /// Failures whose message was not kept (beyond the distinct cap), per class name.
    other: Vec<(&'static str, u64)>,
}

impl ErrorSamples {
    pub fn add(&mut self, class: Class, message: &str) {
        let name = class.name();
        if let Some(s) = self
            .samples
            .iter_mut()
            .find(|s| s.class == name && s.message == message)
        {
            s.count += 1;
            return;
        }
        let kept = self.samples.iter().filter(|s| s.class == name).count();
        if kept < MAX_DISTINCT_ERRORS {
            let message = if message.chars().count() > MAX_MESSAGE {
                let cut: String = message.chars().take(MAX_MESSAGE).collect();
                format!("{cut}…")
            } else {
                message.to_string()
            };
            self.samples.push(ErrorSample {
                class: name,
                message,
                count: 1,
            });
            return;
        }
        match self.other.iter_mut().find(|(c, _)| *c == name) {
            Some((_, n)) => *n += 1,
            None => self.other.push((name, 1)),
        }
    }

    /// Kept samples, most frequent first.
    pub fn samples(&self) -> Vec<ErrorSample> {
        let mut v = self.samples.clone();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        v
    }

    /// Failures whose message was beyond the cap, per class.
    pub fn other(&self) -> &[(&'static str, u64)] {
        &self.other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_messages_are_bounded_and_counted() {
        let mut e = ErrorSamples::default();
        for _ in 0..3 {
            e.add(Class::TransportError, "connection reset by peer");
        }
        for i in 0..10 {
            e.add(Class::ConnectError, &format!("refused {i}"));
        }
        e.add(Class::ConnectError, &"x".repeat(1000));
        let s = e.samples();
        assert_eq!(s[0].message, "connection reset by peer");
        assert_eq!(s[0].count, 3);
        assert_eq!(s.len(), 1 + MAX_DISTINCT_ERRORS);
        assert_eq!(e.other(), &[("connect_error", 6)]);
    }
}
