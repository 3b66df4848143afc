//! Every AMQP 0-9-1 method, with RabbitMQ's extensions (basic.nack,
//! exchange.bind/unbind, connection.blocked/unblocked/update-secret,
//! confirm.select).
//!
//! One table below declares each method's class/method ids and arguments;
//! the macro turns it into a struct per method, the [`Method`] enum, and the
//! encode/decode functions, so the wire layout is written down exactly once.

use bytes::{BufMut, Bytes, BytesMut};

use crate::table::FieldTable;
use crate::wire::{DecodeError, Decoder, Encoder, ShortStr, Wire};

macro_rules! amqp_methods {
    ( $( $name:ident = ($class:literal, $method:literal, $display:literal) { $( $field:ident : $ty:ty ),* $(,)? } )* ) => {
        $(
            #[derive(Debug, Clone, PartialEq, Default)]
            pub struct $name { $( pub $field: $ty ),* }

            impl $name {
                pub const CLASS_ID: u16 = $class;
                pub const METHOD_ID: u16 = $method;
            }

            impl From<$name> for Method {
                fn from(m: $name) -> Method { Method::$name(m) }
            }
        )*

        /// A decoded method frame payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Method { $( $name($name) ),* }

        impl Method {
            /// (class id, method id)
            pub fn ids(&self) -> (u16, u16) {
                match self { $( Method::$name(_) => ($class, $method) ),* }
            }

            /// The spec's name, such as `basic.publish`, for errors and logs.
            pub fn name(&self) -> &'static str {
                match self { $( Method::$name(_) => $display ),* }
            }

            /// The spec's name of the method with these ids (`None`: no
            /// such method), for logs about a method already decoded.
            pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {
                match (class_id, method_id) {
                    $( ($class, $method) => Some($display), )*
                    _ => None,
                }
            }

            /// Appends the method payload (ids and arguments) to `buf`.
            pub fn encode(&self, buf: &mut BytesMut) {
                let (class_id, method_id) = self.ids();
                buf.put_u16(class_id);
                buf.put_u16(method_id);
                let mut enc = Encoder::new(buf);
                match self {
                    $( Method::$name(_m) => { $( Wire::put(&_m.$field, &mut enc); )* } )*
                }
                enc.finish();
            }

            /// Decodes a method frame payload.
            pub fn decode(payload: Bytes) -> Result<Method, DecodeError> {
                let mut _dec = Decoder::new(payload);
                let class_id = _dec.get_u16()?;
                let method_id = _dec.get_u16()?;
                match (class_id, method_id) {
                    $( ($class, $method) => Ok(Method::$name($name { $( $field: <$ty as Wire>::get(&mut _dec)? ),* })), )*
                    _ => Err(DecodeError::UnknownMethod { class_id, method_id }),
                }
            }
        }
    };
}

amqp_methods! {
    ConnectionStart = (10, 10, "connection.start") {
        version_major: u8, version_minor: u8, server_properties: FieldTable,
        mechanisms: Bytes, locales: Bytes,
    }
    ConnectionStartOk = (10, 11, "connection.start_ok") {
        client_properties: FieldTable, mechanism: ShortStr, response: Bytes, locale: ShortStr,
    }
    ConnectionSecure = (10, 20, "connection.secure") { challenge: Bytes }
    ConnectionSecureOk = (10, 21, "connection.secure_ok") { response: Bytes }
    ConnectionTune = (10, 30, "connection.tune") { channel_max: u16, frame_max: u32, heartbeat: u16 }
    ConnectionTuneOk = (10, 31, "connection.tune_ok") { channel_max: u16, frame_max: u32, heartbeat: u16 }
    ConnectionOpen = (10, 40, "connection.open") { virtual_host: ShortStr, capabilities: ShortStr, insist: bool }
    ConnectionOpenOk = (10, 41, "connection.open_ok") { known_hosts: ShortStr }
    ConnectionClose = (10, 50, "connection.close") {
        reply_code: u16, reply_text: ShortStr, class_id: u16, method_id: u16,
    }
    ConnectionCloseOk = (10, 51, "connection.close_ok") {}
    ConnectionBlocked = (10, 60, "connection.blocked") { reason: ShortStr }
    ConnectionUnblocked = (10, 61, "connection.unblocked") {}
    ConnectionUpdateSecret = (10, 70, "connection.update_secret") { new_secret: Bytes, reason: ShortStr }
    ConnectionUpdateSecretOk = (10, 71, "connection.update_secret_ok") {}

    ChannelOpen = (20, 10, "channel.open") { out_of_band: ShortStr }
    ChannelOpenOk = (20, 11, "channel.open_ok") { channel_id: Bytes }
    ChannelFlow = (20, 20, "channel.flow") { active: bool }
    ChannelFlowOk = (20, 21, "channel.flow_ok") { active: bool }
    ChannelClose = (20, 40, "channel.close") {
        reply_code: u16, reply_text: ShortStr, class_id: u16, method_id: u16,
    }
    ChannelCloseOk = (20, 41, "channel.close_ok") {}

    AccessRequest = (30, 10, "access.request") {
        realm: ShortStr, exclusive: bool, passive: bool, active: bool, write: bool, read: bool,
    }
    AccessRequestOk = (30, 11, "access.request_ok") { ticket: u16 }

    ExchangeDeclare = (40, 10, "exchange.declare") {
        ticket: u16, exchange: ShortStr, kind: ShortStr, passive: bool, durable: bool,
        auto_delete: bool, internal: bool, nowait: bool, arguments: FieldTable,
    }
    ExchangeDeclareOk = (40, 11, "exchange.declare_ok") {}
    ExchangeDelete = (40, 20, "exchange.delete") { ticket: u16, exchange: ShortStr, if_unused: bool, nowait: bool }
    ExchangeDeleteOk = (40, 21, "exchange.delete_ok") {}
    ExchangeBind = (40, 30, "exchange.bind") {
        ticket: u16, destination: ShortStr, source: ShortStr, routing_key: ShortStr,
        nowait: bool, arguments: FieldTable,
    }
    ExchangeBindOk = (40, 31, "exchange.bind_ok") {}
    ExchangeUnbind = (40, 40, "exchange.unbind") {
        ticket: u16, destination: ShortStr, source: ShortStr, routing_key: ShortStr,
        nowait: bool, arguments: FieldTable,
    }
    ExchangeUnbindOk = (40, 51, "exchange.unbind_ok") {}

    QueueDeclare = (50, 10, "queue.declare") {
        ticket: u16, queue: ShortStr, passive: bool, durable: bool, exclusive: bool,
        auto_delete: bool, nowait: bool, arguments: FieldTable,
    }
    QueueDeclareOk = (50, 11, "queue.declare_ok") { queue: ShortStr, message_count: u32, consumer_count: u32 }
    QueueBind = (50, 20, "queue.bind") {
        ticket: u16, queue: ShortStr, exchange: ShortStr, routing_key: ShortStr,
        nowait: bool, arguments: FieldTable,
    }
    QueueBindOk = (50, 21, "queue.bind_ok") {}
    QueuePurge = (50, 30, "queue.purge") { ticket: u16, queue: ShortStr, nowait: bool }
    QueuePurgeOk = (50, 31, "queue.purge_ok") { message_count: u32 }
    QueueDelete = (50, 40, "queue.delete") {
        ticket: u16, queue: ShortStr, if_unused: bool, if_empty: bool, nowait: bool,
    }
    QueueDeleteOk = (50, 41, "queue.delete_ok") { message_count: u32 }
    QueueUnbind = (50, 50, "queue.unbind") {
        ticket: u16, queue: ShortStr, exchange: ShortStr, routing_key: ShortStr, arguments: FieldTable,
    }
    QueueUnbindOk = (50, 51, "queue.unbind_ok") {}

    BasicQos = (60, 10, "basic.qos") { prefetch_size: u32, prefetch_count: u16, global: bool }
    BasicQosOk = (60, 11, "basic.qos_ok") {}
    BasicConsume = (60, 20, "basic.consume") {
        ticket: u16, queue: ShortStr, consumer_tag: ShortStr, no_local: bool, no_ack: bool,
        exclusive: bool, nowait: bool, arguments: FieldTable,
    }
    BasicConsumeOk = (60, 21, "basic.consume_ok") { consumer_tag: ShortStr }
    BasicCancel = (60, 30, "basic.cancel") { consumer_tag: ShortStr, nowait: bool }
    BasicCancelOk = (60, 31, "basic.cancel_ok") { consumer_tag: ShortStr }
    BasicPublish = (60, 40, "basic.publish") {
        ticket: u16, exchange: ShortStr, routing_key: ShortStr, mandatory: bool, immediate: bool,
    }
    BasicReturn = (60, 50, "basic.return") {
        reply_code: u16, reply_text: ShortStr, exchange: ShortStr, routing_key: ShortStr,
    }
    BasicDeliver = (60, 60, "basic.deliver") {
        consumer_tag: ShortStr, delivery_tag: u64, redelivered: bool, exchange: ShortStr,
        routing_key: ShortStr,
    }
    BasicGet = (60, 70, "basic.get") { ticket: u16, queue: ShortStr, no_ack: bool }
    BasicGetOk = (60, 71, "basic.get_ok") {
        delivery_tag: u64, redelivered: bool, exchange: ShortStr, routing_key: ShortStr,
        message_count: u32,
    }
    BasicGetEmpty = (60, 72, "basic.get_empty") { cluster_id: ShortStr }
    BasicAck = (60, 80, "basic.ack") { delivery_tag: u64, multiple: bool }
    BasicReject = (60, 90, "basic.reject") { delivery_tag: u64, requeue: bool }
    BasicRecoverAsync = (60, 100, "basic.recover_async") { requeue: bool }
    BasicRecover = (60, 110, "basic.recover") { requeue: bool }
    BasicRecoverOk = (60, 111, "basic.recover_ok") {}
    BasicNack = (60, 120, "basic.nack") { delivery_tag: u64, multiple: bool, requeue: bool }

    ConfirmSelect = (85, 10, "confirm.select") { nowait: bool }
    ConfirmSelectOk = (85, 11, "confirm.select_ok") {}

    TxSelect = (90, 10, "tx.select") {}
    TxSelectOk = (90, 11, "tx.select_ok") {}
    TxCommit = (90, 20, "tx.commit") {}
    TxCommitOk = (90, 21, "tx.commit_ok") {}
    TxRollback = (90, 30, "tx.rollback") {}
    TxRollbackOk = (90, 31, "tx.rollback_ok") {}
}

impl Method {
    /// Methods followed by a content header and body frames.
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_declare_matches_reference_bytes() {
        // queue.declare(queue="hello", durable=true) as pika sends it.
        let m = Method::QueueDeclare(QueueDeclare {
            queue: "hello".into(),
            durable: true,
            ..Default::default()
        });
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let expected: &[u8] = &[
            0,
            50,
            0,
            10,
            0,
            0,
            5,
            b'h',
            b'e',
            b'l',
            b'l',
            b'o',
            0b0000_0010,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(&buf[..], expected);
        assert_eq!(Method::decode(buf.freeze()).unwrap(), m);
    }

    #[test]
    fn unknown_method_is_an_error() {
        let err = Method::decode(Bytes::from_static(&[0, 60, 0, 99])).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownMethod {
                class_id: 60,
                method_id: 99
            }
        );
    }
}
