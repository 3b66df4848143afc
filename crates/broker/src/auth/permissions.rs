//! Permission regexes: configure/write/read per user per vhost, and topic
//! permissions (write/read on routing keys) per user, vhost and exchange.

use regex::Regex;

/// Compiles a permission pattern as RabbitMQ uses it: searched for in the
/// resource name (`re:run`), not matched whole, so `logs` allows `mylogs`
/// and `^logs$` only `logs` (measured on RabbitMQ 3.10).
///
/// The empty pattern is RabbitMQ's alias for `^$` (nothing is allowed).
fn compile(p: &str) -> Result<Regex, String> {
    let p = if p.is_empty() { "^$" } else { p };
    Regex::new(p).map_err(|e| {
        let why = e.to_string();
        let last = why.lines().last().unwrap_or("invalid").trim();
        format!("regular expression '{p}' is invalid: {last}")
    })
}

/// Configure/write/read regexes for one user in one vhost.
#[derive(Debug, Clone)]
pub struct Permission {
    pub configure: Regex,
    pub write: Regex,
    pub read: Regex,
    /// The patterns as given, for listings and definitions.
    pub patterns: [String; 3],
}

impl Permission {
    /// Compiles the three patterns; an error names the bad one.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        Ok(Permission {
            configure: compile(configure)?,
            write: compile(write)?,
            read: compile(read)?,
            patterns: [configure.into(), write.into(), read.into()],
        })
    }

    pub fn full() -> Self {
        // ".*" always compiles.
        Permission::new(".*", ".*", ".*").unwrap_or_else(|_| unreachable!())
    }

    /// The patterns as given, for listings.
    pub fn patterns(&self) -> [String; 3] {
        self.patterns.clone()
    }
}

/// Topic permissions of one user in one vhost for one exchange: write
/// (publish) and read (bind) patterns on routing keys. `{username}` and
/// `{vhost}` are expanded when the permission is set.
#[derive(Debug, Clone)]
pub struct TopicPermission {
    pub exchange: String,
    pub write: Regex,
    pub read: Regex,
    /// The patterns as given (unexpanded).
    pub patterns: [String; 2],
}

impl TopicPermission {
    pub fn new(
        exchange: &str,
        write: &str,
        read: &str,
        user: &str,
        vhost: &str,
    ) -> Result<Self, String> {
        // {client_id} is MQTT's; AMQP clients have none, so it matches
        // nothing but itself (escaped).
        let expand = |p: &str| {
            p.replace("{username}", &regex::escape(user))
                .replace("{vhost}", &regex::escape(vhost))
                .replace("{client_id}", "\\{client_id\\}")
        };
        Ok(TopicPermission {
            exchange: exchange.to_string(),
            write: compile(&expand(write))?,
            read: compile(&expand(read))?,
            patterns: [write.into(), read.into()],
        })
    }

    /// Checks the patterns before storing them (variables expanded with
    /// placeholder values: `{username}` is not a regex repetition).
    pub fn validate(write: &str, read: &str) -> Result<(), String> {
        Self::new("", write, read, "user", "vhost").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_searched_as_in_rabbitmq() {
        let p = Permission::new("^amq\\.gen.*", "logs", "^q$").unwrap();
        assert!(p.configure.is_match("amq.gen-abc"));
        assert!(!p.configure.is_match("x.amq.gen"));
        assert!(p.write.is_match("logs"));
        assert!(
            p.write.is_match("mylogs2"),
            "unanchored, as RabbitMQ's re:run"
        );
        assert!(p.read.is_match("q") && !p.read.is_match("q2"));
        let none = Permission::new("", "", "").unwrap();
        assert!(
            !none.configure.is_match("anything"),
            "'' is RabbitMQ's alias for ^$"
        );
        assert_eq!(none.patterns()[0], "");
        assert_eq!(p.patterns()[1], "logs");
        let e = Permission::new("(", ".*", ".*").unwrap_err();
        assert!(e.contains("regular expression '(' is invalid"), "{e}");
    }

    #[test]
    fn topic_permissions_expand_variables() {
        let t =
            TopicPermission::new("amq.topic", "^{username}\\.", "^{vhost}\\.", "a.b", "/").unwrap();
        assert!(t.write.is_match("a.b.x"));
        assert!(
            !t.write.is_match("aXb.x"),
            "the user name is matched literally"
        );
        assert!(t.read.is_match("/.news"));
        assert!(t.read.is_match("/.x") && !t.read.is_match("x./"));
        assert!(TopicPermission::validate("(", ".*").is_err());
        assert!(TopicPermission::validate("^{username}\\.", "^{vhost}").is_ok());
    }
}
