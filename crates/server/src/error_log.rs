//! Channel and connection errors in the log, as RabbitMQ logs them
//! ("Channel error on connection … operation queue.declare caused a
//! channel exception precondition_failed: …"), at warning.
//!
//! At most [`PER_WINDOW`] lines per connection per [`WINDOW`]: a client
//! that provokes errors in a loop costs the log a bounded number of lines,
//! and the lines it did not get are counted and reported once.

use std::time::{Duration, Instant};

use tracing::warn;
use warren_broker::AmqpError;
use warren_protocol::constants::reply;
use warren_protocol::methods::Method;

/// Error lines one connection may write per window.
pub(crate) const PER_WINDOW: u32 = 5;
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// One connection's error-log budget.
#[derive(Debug)]
pub(crate) struct ErrorLog {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Whom an error line names: RabbitMQ's "(peer -> local, vhost: 'v',
/// user: 'u')".
pub(crate) struct Subject<'a> {
    pub connection: &'a str,
    pub vhost: &'a str,
    pub user: &'a str,
}

impl ErrorLog {
    pub fn new(now: Instant) -> ErrorLog {
        ErrorLog {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now; reports what an ended window
    /// left out.
    fn admit(&mut self, now: Instant, connection: &str) -> bool {
        if now.duration_since(self.window_start) >= WINDOW {
            self.flush(connection);
            self.window_start = now;
            self.logged = 0;
        }
        if self.logged < PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Reports the lines left out, if any (at a window's end and when the
    /// connection ends).
    pub fn flush(&mut self, connection: &str) {
        if self.suppressed > 0 {
            warn!(
                "connection {connection}: {} more channel or connection error(s) not logged \
                 (at most {PER_WINDOW} a minute per connection)",
                self.suppressed
            );
            self.suppressed = 0;
        }
    }

    /// A channel closed by the broker for `e`, caused by method
    /// (`class_id`, `method_id`).
    pub fn channel_error(
        &mut self,
        now: Instant,
        who: &Subject<'_>,
        channel: u16,
        ids: (u16, u16),
        e: &AmqpError,
    ) {
        if self.admit(now, who.connection) {
            warn!(
                "Channel error on connection {} (vhost: '{}', user: '{}'), channel {channel}: \
                 operation {} caused a channel exception {}: {}",
                who.connection,
                who.vhost,
                who.user,
                operation(ids),
                exception(e.code),
                e.text
            );
        }
    }

    /// The connection closed by the broker for `e`. A forced close
    /// (320: shutdown, `close_connection`) is not an error.
    pub fn connection_error(
        &mut self,
        now: Instant,
        who: &Subject<'_>,
        ids: (u16, u16),
        e: &AmqpError,
    ) {
        if e.code == reply::CONNECTION_FORCED {
            return;
        }
        if self.admit(now, who.connection) {
            warn!(
                "Error on AMQP connection {} (vhost: '{}', user: '{}'), channel 0: \
                 operation {} caused a connection exception {}: {}",
                who.connection,
                who.vhost,
                who.user,
                operation(ids),
                exception(e.code),
                e.text
            );
        }
    }
}

/// `queue.declare`, or `none` when no method caused it (RabbitMQ's word).
fn operation(ids: (u16, u16)) -> &'static str {
    match ids {
        (0, 0) => "none",
        (c, m) => Method::name_of(c, m).unwrap_or("none"),
    }
}

/// RabbitMQ's exception atom: `precondition_failed`, `not_found`, …
fn exception(code: u16) -> String {
    reply::name(code).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_a_few_lines_per_window_and_the_rest_counted() {
        let t0 = Instant::now();
        let mut log = ErrorLog::new(t0);
        let admitted = (0..100).filter(|_| log.admit(t0, "c")).count();
        assert_eq!(admitted, PER_WINDOW as usize);
        assert_eq!(log.suppressed, 100 - PER_WINDOW as u64);
        // A new window: the count is reported and lines are admitted again.
        assert!(log.admit(t0 + WINDOW, "c"));
        assert_eq!(log.suppressed, 0);
    }

    #[test]
    fn names_as_rabbitmq_writes_them() {
        assert_eq!(operation((50, 10)), "queue.declare");
        assert_eq!(operation((0, 0)), "none");
        assert_eq!(exception(406), "precondition_failed");
        assert_eq!(exception(404), "not_found");
    }
}
