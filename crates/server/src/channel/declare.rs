//! exchange.declare and queue.declare, with their permission checks.

use super::*;

impl Channel {
    pub(super) fn exchange_declare(
        &mut self,
        s: &mut ConnContext,
        m: ExchangeDeclare,
    ) -> Result<()> {
        if !m.passive {
            if m.exchange.is_empty() {
                return Err(default_exchange_refused());
            }
            check(s, Operation::Configure, Resource::Exchange, &m.exchange)?;
            let ae = m
                .arguments
                .get("alternate-exchange")
                .and_then(|v| v.as_bytes());
            if let (Some(ae), Err(_)) = (ae, s.vhost.exchange(&m.exchange)) {
                // A new exchange with an alternate: read on it, write on
                // the alternate (RabbitMQ's rule).
                check(s, Operation::Read, Resource::Exchange, &m.exchange)?;
                check(
                    s,
                    Operation::Write,
                    Resource::Exchange,
                    &ShortStr::new(Bytes::copy_from_slice(ae)),
                )?;
            }
        }
        s.vhost.declare_exchange(&ExchangeSpec {
            name: m.exchange,
            kind: m.kind,
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments,
        })?;
        if !m.nowait {
            s.out.method(self.id, &ExchangeDeclareOk {}.into());
        }
        Ok(())
    }

    pub(super) fn queue_declare(&mut self, s: &mut ConnContext, m: QueueDeclare) -> Result<()> {
        if m.passive && m.queue == DIRECT_REPLY_TO {
            // RabbitMQ reports the pseudo-queue as existing, with a consumer.
            if !m.nowait {
                s.out.method(
                    self.id,
                    &QueueDeclareOk {
                        queue: m.queue,
                        message_count: 0,
                        consumer_count: 1,
                    }
                    .into(),
                );
            }
            return Ok(());
        }
        let (name, server_named) = if m.queue.is_empty() && !m.passive {
            (ShortStr::from(names::queue_name()), true)
        } else {
            (m.queue, false)
        };
        if !m.passive {
            if !server_named {
                check_name("queue", &name)?;
            }
            check(s, Operation::Configure, Resource::Queue, &name)?;
            let dlx = m
                .arguments
                .get("x-dead-letter-exchange")
                .and_then(|v| v.as_bytes());
            if let (Some(dlx), Err(_)) = (dlx, s.vhost.queue(&name)) {
                // A new queue with a dead-letter exchange: read on the
                // queue, write on the exchange (RabbitMQ's rule).
                check(s, Operation::Read, Resource::Queue, &name)?;
                check(
                    s,
                    Operation::Write,
                    Resource::Exchange,
                    &ShortStr::new(Bytes::copy_from_slice(dlx)),
                )?;
            }
        }
        let (q, counts) = s.vhost.declare_queue(
            &QueueSpec {
                name,
                server_named,
                passive: m.passive,
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
                arguments: m.arguments,
            },
            s.id,
        )?;
        self.last_queue = Some(q.name.clone());
        if !m.nowait {
            s.out.method(
                self.id,
                &QueueDeclareOk {
                    queue: q.name.clone(),
                    message_count: counts.message_count,
                    consumer_count: counts.consumer_count,
                }
                .into(),
            );
        }
        Ok(())
    }
}
