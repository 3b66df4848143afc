//! `warren-perf`: throughput and latency for any AMQP 0-9-1 broker.
//!
//! Producers, consumers, queues and an exchange as in RabbitMQ's PerfTest;
//! per-second publish/confirm/consume rates and end-to-end latency (from a
//! timestamp in each body), and a summary line (`--json` for machines).

mod client;
mod histogram;
mod run;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "warren-perf",
    version,
    about = "Throughput and latency tester for AMQP 0-9-1 brokers"
)]
pub struct Args {
    /// Broker URI
    #[arg(
        short = 'u',
        long,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub uri: String,
    /// Producer connections
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (latency needs at least 8)
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,
    /// Messages per second per producer (0: as fast as possible)
    #[arg(short = 'r', long, default_value_t = 0)]
    pub rate: u64,
    /// Publish persistent messages (delivery_mode 2) to durable queues
    #[arg(long)]
    pub persistent: bool,
    /// Publisher confirms with at most this many unconfirmed messages (0: off)
    #[arg(short = 'c', long, default_value_t = 0)]
    pub confirm: usize,
    /// Consume without acknowledgements
    #[arg(short = 'a', long)]
    pub auto_ack: bool,
    /// Acknowledge every N messages (basic.ack multiple)
    #[arg(short = 'A', long, default_value_t = 1)]
    pub ack_every: u64,
    /// Consumer prefetch (basic.qos); 0: unlimited
    #[arg(short = 'q', long, default_value_t = 0)]
    pub prefetch: u16,
    /// Number of queues; producers cycle over them, consumers are spread across them
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Queue names; %d is the queue number
    #[arg(long, default_value = "perf-test-%d")]
    pub queue_pattern: String,
    /// Exchange to publish to ("" is the default exchange)
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,
    /// Exchange type when --exchange is set
    #[arg(short = 't', long = "type", default_value = "direct")]
    pub exchange_type: String,
    /// Declare the queues as priority queues (`x-max-priority`)
    #[arg(long)]
    pub max_priority: Option<u8>,
    /// The `priority` property of every message
    #[arg(long)]
    pub priority: Option<u8>,
    /// An `x-delay` header (ms) on every message (delayed-message exchanges)
    #[arg(long)]
    pub delay: Option<i64>,
    /// `x-delayed-type` of an `x-delayed-message` exchange
    #[arg(long, default_value = "direct")]
    pub delayed_type: String,
    /// Routing key; %q is the queue name, %d the queue number
    #[arg(short = 'k', long, default_value = "%q")]
    pub routing_key: String,
    /// Binding key for each queue (default: the routing key)
    #[arg(long)]
    pub binding_key: Option<String>,
    /// Extra bindings that never match, spread over the queues (routing-table size tests)
    #[arg(long, default_value_t = 0)]
    pub extra_bindings: usize,
    /// Run time in seconds
    #[arg(short = 'z', long, default_value_t = 10.0)]
    pub time: f64,
    /// Messages per producer (0: until --time)
    #[arg(short = 'C', long, default_value_t = 0)]
    pub pmessages: u64,
    /// Messages per consumer (0: until --time)
    #[arg(short = 'D', long, default_value_t = 0)]
    pub cmessages: u64,
    /// Publish everything first, then consume: timings for filling and draining a backlog
    #[arg(long)]
    pub publish_then_consume: bool,
    /// Sequential RPC calls (reply_to + correlation_id) instead of a message stream
    #[arg(long)]
    pub rpc: bool,
    /// RPC replies through amq.rabbitmq.reply-to instead of an exclusive queue
    #[arg(long)]
    pub direct_reply_to: bool,
    /// Don't declare queues/exchanges (they exist already)
    #[arg(long)]
    pub predeclared: bool,
    /// Delete the queues at the end
    #[arg(long)]
    pub cleanup: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// No per-second lines
    #[arg(long)]
    pub quiet: bool,
    /// Open this many idle connections (with one channel each), hold them
    /// for --time seconds, and report (a memory-per-connection test)
    #[arg(long, default_value_t = 0)]
    pub idle_connections: usize,
}

impl Args {
    pub fn queue_name(&self, i: usize) -> String {
        self.queue_pattern.replace("%d", &i.to_string())
    }

    fn render(&self, template: &str, i: usize) -> String {
        template
            .replace("%q", &self.queue_name(i))
            .replace("%d", &i.to_string())
    }

    pub fn routing_key_for(&self, i: usize) -> String {
        self.render(&self.routing_key, i)
    }

    pub fn binding_key_for(&self, i: usize) -> String {
        self.render(self.binding_key.as_deref().unwrap_or(&self.routing_key), i)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.queues == 0 {
            anyhow::bail!("--queues must be at least 1");
        }
        if self.ack_every == 0 {
            anyhow::bail!("--ack-every must be at least 1");
        }
        const TYPES: [&str; 6] = [
            "direct",
            "fanout",
            "topic",
            "headers",
            "x-delayed-message",
            "x-consistent-hash",
        ];
        if !TYPES.contains(&self.exchange_type.as_str()) {
            anyhow::bail!("--type must be one of {}", TYPES.join(", "));
        }
        if self.publish_then_consume && self.pmessages == 0 {
            anyhow::bail!("--publish-then-consume needs --pmessages");
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("warren-perf: {e}");
        return std::process::ExitCode::from(64);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    match rt.block_on(run::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-perf: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Args {
        let mut v = vec!["warren-perf"];
        v.extend_from_slice(a);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_and_templates() {
        let a = parse(&[]);
        assert_eq!((a.producers, a.consumers, a.size, a.queues), (1, 1, 16, 1));
        assert_eq!(a.routing_key_for(0), "perf-test-0");
        let a = parse(&[
            "-k",
            "perf.%d.x",
            "--binding-key",
            "perf.%d.#",
            "--queues",
            "4",
            "-e",
            "t",
            "-t",
            "topic",
        ]);
        assert_eq!(a.routing_key_for(3), "perf.3.x");
        assert_eq!(a.binding_key_for(3), "perf.3.#");
        a.validate().unwrap();
    }

    #[test]
    fn invalid_combinations_are_refused() {
        assert!(parse(&["--queues", "0"]).validate().is_err());
        assert!(parse(&["-t", "bogus"]).validate().is_err());
        assert!(parse(&["--publish-then-consume"]).validate().is_err());
        assert!(Args::try_parse_from(["warren-perf", "-x", "many"]).is_err());
    }
}
