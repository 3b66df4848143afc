//! Property tests: decode(encode(x)) == x for every method, for content
//! headers and for field tables, and no input makes the decoders panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use warren_protocol::methods::*;
use warren_protocol::table::{Decimal, FieldTable, FieldValue};
use warren_protocol::{BasicProperties, ContentHeader, Decoder, Frame, ShortStr};

fn short_str() -> impl Strategy<Value = ShortStr> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(|v| ShortStr::new(Bytes::from(v)))
}

fn long_str() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..100).prop_map(Bytes::from)
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        // NaN != NaN; finite floats compare by value.
        (-1e30f32..1e30f32).prop_map(FieldValue::F32),
        (-1e300f64..1e300f64).prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        long_str().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        long_str().prop_map(FieldValue::Bytes),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(FieldValue::Array),
            prop::collection::vec((short_str(), inner), 0..5)
                .prop_map(|v| FieldValue::Table(FieldTable(v))),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec((short_str(), field_value()), 0..6).prop_map(FieldTable)
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    let s = || prop::option::of(short_str());
    (
        (
            s(),
            s(),
            prop::option::of(table()),
            prop::option::of(any::<u8>()),
        ),
        (prop::option::of(any::<u8>()), s(), s(), s(), s()),
        (prop::option::of(any::<u64>()), s(), s(), s(), s()),
    )
        .prop_map(
            |(
                (content_type, content_encoding, headers, delivery_mode),
                (priority, correlation_id, reply_to, expiration, message_id),
                (timestamp, kind, user_id, app_id, cluster_id),
            )| BasicProperties {
                content_type,
                content_encoding,
                headers,
                delivery_mode,
                priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp,
                kind,
                user_id,
                app_id,
                cluster_id,
            },
        )
}

fn method() -> impl Strategy<Value = Method> {
    let s = short_str;
    prop_oneof![
        (any::<u8>(), any::<u8>(), table(), long_str(), long_str()).prop_map(|(a, b, t, m, l)| {
            ConnectionStart {
                version_major: a,
                version_minor: b,
                server_properties: t,
                mechanisms: m,
                locales: l,
            }
            .into()
        }),
        (table(), s(), long_str(), s()).prop_map(|(t, m, r, l)| ConnectionStartOk {
            client_properties: t,
            mechanism: m,
            response: r,
            locale: l
        }
        .into()),
        long_str().prop_map(|c| ConnectionSecure { challenge: c }.into()),
        long_str().prop_map(|r| ConnectionSecureOk { response: r }.into()),
        (any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(c, f, h)| ConnectionTune {
            channel_max: c,
            frame_max: f,
            heartbeat: h
        }
        .into()),
        (any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(c, f, h)| ConnectionTuneOk {
            channel_max: c,
            frame_max: f,
            heartbeat: h
        }
        .into()),
        (s(), s(), any::<bool>()).prop_map(|(v, c, i)| ConnectionOpen {
            virtual_host: v,
            capabilities: c,
            insist: i
        }
        .into()),
        s().prop_map(|k| ConnectionOpenOk { known_hosts: k }.into()),
        (any::<u16>(), s(), any::<u16>(), any::<u16>()).prop_map(|(c, t, a, b)| {
            ConnectionClose {
                reply_code: c,
                reply_text: t,
                class_id: a,
                method_id: b,
            }
            .into()
        }),
        Just(ConnectionCloseOk {}.into()),
        s().prop_map(|r| ConnectionBlocked { reason: r }.into()),
        Just(ConnectionUnblocked {}.into()),
        (long_str(), s()).prop_map(|(n, r)| ConnectionUpdateSecret {
            new_secret: n,
            reason: r
        }
        .into()),
        Just(ConnectionUpdateSecretOk {}.into()),
        s().prop_map(|o| ChannelOpen { out_of_band: o }.into()),
        long_str().prop_map(|c| ChannelOpenOk { channel_id: c }.into()),
        any::<bool>().prop_map(|a| ChannelFlow { active: a }.into()),
        any::<bool>().prop_map(|a| ChannelFlowOk { active: a }.into()),
        (any::<u16>(), s(), any::<u16>(), any::<u16>()).prop_map(|(c, t, a, b)| ChannelClose {
            reply_code: c,
            reply_text: t,
            class_id: a,
            method_id: b
        }
        .into()),
        Just(ChannelCloseOk {}.into()),
        (s(), any::<[bool; 5]>()).prop_map(|(r, b)| AccessRequest {
            realm: r,
            exclusive: b[0],
            passive: b[1],
            active: b[2],
            write: b[3],
            read: b[4]
        }
        .into()),
        any::<u16>().prop_map(|t| AccessRequestOk { ticket: t }.into()),
        (any::<u16>(), s(), s(), any::<[bool; 5]>(), table()).prop_map(|(t, e, k, b, a)| {
            ExchangeDeclare {
                ticket: t,
                exchange: e,
                kind: k,
                passive: b[0],
                durable: b[1],
                auto_delete: b[2],
                internal: b[3],
                nowait: b[4],
                arguments: a,
            }
            .into()
        }),
        Just(ExchangeDeclareOk {}.into()),
        (any::<u16>(), s(), any::<bool>(), any::<bool>()).prop_map(|(t, e, u, n)| {
            ExchangeDelete {
                ticket: t,
                exchange: e,
                if_unused: u,
                nowait: n,
            }
            .into()
        }),
        Just(ExchangeDeleteOk {}.into()),
        (any::<u16>(), s(), s(), s(), any::<bool>(), table()).prop_map(|(t, d, so, r, n, a)| {
            ExchangeBind {
                ticket: t,
                destination: d,
                source: so,
                routing_key: r,
                nowait: n,
                arguments: a,
            }
            .into()
        }),
        Just(ExchangeBindOk {}.into()),
        (any::<u16>(), s(), s(), s(), any::<bool>(), table()).prop_map(|(t, d, so, r, n, a)| {
            ExchangeUnbind {
                ticket: t,
                destination: d,
                source: so,
                routing_key: r,
                nowait: n,
                arguments: a,
            }
            .into()
        }),
        Just(ExchangeUnbindOk {}.into()),
        (any::<u16>(), s(), any::<[bool; 5]>(), table()).prop_map(|(t, q, b, a)| {
            QueueDeclare {
                ticket: t,
                queue: q,
                passive: b[0],
                durable: b[1],
                exclusive: b[2],
                auto_delete: b[3],
                nowait: b[4],
                arguments: a,
            }
            .into()
        }),
        (s(), any::<u32>(), any::<u32>()).prop_map(|(q, m, c)| QueueDeclareOk {
            queue: q,
            message_count: m,
            consumer_count: c
        }
        .into()),
        (any::<u16>(), s(), s(), s(), any::<bool>(), table()).prop_map(|(t, q, e, r, n, a)| {
            QueueBind {
                ticket: t,
                queue: q,
                exchange: e,
                routing_key: r,
                nowait: n,
                arguments: a,
            }
            .into()
        }),
        Just(QueueBindOk {}.into()),
        (any::<u16>(), s(), any::<bool>()).prop_map(|(t, q, n)| QueuePurge {
            ticket: t,
            queue: q,
            nowait: n
        }
        .into()),
        any::<u32>().prop_map(|m| QueuePurgeOk { message_count: m }.into()),
        (any::<u16>(), s(), any::<[bool; 3]>()).prop_map(|(t, q, b)| QueueDelete {
            ticket: t,
            queue: q,
            if_unused: b[0],
            if_empty: b[1],
            nowait: b[2]
        }
        .into()),
        any::<u32>().prop_map(|m| QueueDeleteOk { message_count: m }.into()),
        (any::<u16>(), s(), s(), s(), table()).prop_map(|(t, q, e, r, a)| QueueUnbind {
            ticket: t,
            queue: q,
            exchange: e,
            routing_key: r,
            arguments: a
        }
        .into()),
        Just(QueueUnbindOk {}.into()),
        (any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(s, c, g)| BasicQos {
            prefetch_size: s,
            prefetch_count: c,
            global: g
        }
        .into()),
        Just(BasicQosOk {}.into()),
        (any::<u16>(), s(), s(), any::<[bool; 4]>(), table()).prop_map(|(t, q, c, b, a)| {
            BasicConsume {
                ticket: t,
                queue: q,
                consumer_tag: c,
                no_local: b[0],
                no_ack: b[1],
                exclusive: b[2],
                nowait: b[3],
                arguments: a,
            }
            .into()
        }),
        s().prop_map(|c| BasicConsumeOk { consumer_tag: c }.into()),
        (s(), any::<bool>()).prop_map(|(c, n)| BasicCancel {
            consumer_tag: c,
            nowait: n
        }
        .into()),
        s().prop_map(|c| BasicCancelOk { consumer_tag: c }.into()),
        (any::<u16>(), s(), s(), any::<bool>(), any::<bool>()).prop_map(|(t, e, r, m, i)| {
            BasicPublish {
                ticket: t,
                exchange: e,
                routing_key: r,
                mandatory: m,
                immediate: i,
            }
            .into()
        }),
        (any::<u16>(), s(), s(), s()).prop_map(|(c, t, e, r)| BasicReturn {
            reply_code: c,
            reply_text: t,
            exchange: e,
            routing_key: r
        }
        .into()),
        (s(), any::<u64>(), any::<bool>(), s(), s()).prop_map(|(c, d, r, e, k)| {
            BasicDeliver {
                consumer_tag: c,
                delivery_tag: d,
                redelivered: r,
                exchange: e,
                routing_key: k,
            }
            .into()
        }),
        (any::<u16>(), s(), any::<bool>()).prop_map(|(t, q, n)| BasicGet {
            ticket: t,
            queue: q,
            no_ack: n
        }
        .into()),
        (any::<u64>(), any::<bool>(), s(), s(), any::<u32>()).prop_map(|(d, r, e, k, m)| {
            BasicGetOk {
                delivery_tag: d,
                redelivered: r,
                exchange: e,
                routing_key: k,
                message_count: m,
            }
            .into()
        }),
        s().prop_map(|c| BasicGetEmpty { cluster_id: c }.into()),
        (any::<u64>(), any::<bool>()).prop_map(|(d, m)| BasicAck {
            delivery_tag: d,
            multiple: m
        }
        .into()),
        (any::<u64>(), any::<bool>()).prop_map(|(d, r)| BasicReject {
            delivery_tag: d,
            requeue: r
        }
        .into()),
        any::<bool>().prop_map(|r| BasicRecoverAsync { requeue: r }.into()),
        any::<bool>().prop_map(|r| BasicRecover { requeue: r }.into()),
        Just(BasicRecoverOk {}.into()),
        (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(d, m, r)| BasicNack {
            delivery_tag: d,
            multiple: m,
            requeue: r
        }
        .into()),
        any::<bool>().prop_map(|n| ConfirmSelect { nowait: n }.into()),
        Just(ConfirmSelectOk {}.into()),
        Just(TxSelect {}.into()),
        Just(TxSelectOk {}.into()),
        Just(TxCommit {}.into()),
        Just(TxCommitOk {}.into()),
        Just(TxRollback {}.into()),
        Just(TxRollbackOk {}.into()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_method_round_trips(m in method()) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        prop_assert_eq!(Method::decode(buf.freeze()).unwrap(), m);
    }

    #[test]
    fn tables_round_trip(t in table()) {
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        let mut d = Decoder::new(buf.freeze());
        prop_assert_eq!(d.get_table().unwrap(), t);
        prop_assert_eq!(d.remaining(), 0);
    }

    #[test]
    fn content_headers_round_trip(p in properties(), size in any::<u64>()) {
        let h = ContentHeader::new(size, p.clone());
        let mut buf = BytesMut::new();
        ContentHeader::encode_payload(&mut buf, size, &h.raw_properties);
        let back = ContentHeader::decode(buf.freeze()).unwrap();
        prop_assert_eq!(back.properties, p);
        prop_assert_eq!(back.body_size, size);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let bytes = Bytes::from(data.clone());
        let _ = Method::decode(bytes.clone());
        let _ = ContentHeader::decode(bytes.clone());
        let _ = Decoder::new(bytes).get_table();
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = Frame::parse(&mut buf, 4096) {}
    }

    #[test]
    fn mutated_methods_never_panic(m in method(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let mut v = buf.to_vec();
        for (i, b) in flips {
            let at = i.index(v.len());
            v[at] = b;
        }
        let _ = Method::decode(Bytes::from(v));
    }
}
