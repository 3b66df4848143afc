//! The MQTT codec against itself (every packet survives encode → decode,
//! split anywhere) and against bytes real clients sent.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "[a-z/+#$é]{0,12}"
}

fn properties(v5: bool) -> impl Strategy<Value = Properties> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        proptest::collection::vec((text(), text()), 0..3),
        proptest::option::of(1u16..),
    )
        .prop_map(move |(exp, ct, corr, user, alias)| {
            if !v5 {
                return Properties::default();
            }
            Properties {
                message_expiry_interval: exp,
                content_type: ct,
                correlation_data: corr.map(Bytes::from),
                user_properties: user,
                topic_alias: alias,
                ..Properties::default()
            }
        })
}

fn packet(level: Level) -> impl Strategy<Value = Packet> {
    let v5 = level == LEVEL_5;
    let id = 1u16..;
    prop_oneof![
        (
            any::<bool>(),
            0u8..3,
            any::<bool>(),
            text(),
            id.clone(),
            properties(v5),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(dup, qos, retain, topic, id, properties, payload)| {
                Packet::Publish(Publish {
                    dup: dup && qos > 0,
                    qos,
                    retain,
                    topic,
                    packet_id: (qos > 0).then_some(id),
                    properties,
                    payload: Bytes::from(payload),
                })
            }),
        (id.clone(), 0u8..2)
            .prop_map(move |(id, r)| Packet::PubAck(Ack::new(id, if v5 { r * 0x10 } else { 0 }))),
        id.clone().prop_map(|id| Packet::PubRel(Ack::new(id, 0))),
        (
            id.clone(),
            properties(v5),
            proptest::collection::vec((text(), 0u8..3), 1..4)
        )
            .prop_map(
                move |(packet_id, properties, f)| Packet::Subscribe(Subscribe {
                    packet_id,
                    properties,
                    filters: f
                        .into_iter()
                        .map(|(t, qos)| (
                            t,
                            SubOptions {
                                qos,
                                no_local: v5 && qos == 1,
                                ..Default::default()
                            }
                        ))
                        .collect(),
                })
            ),
        (id.clone(), proptest::collection::vec(any::<u8>(), 1..4)).prop_map(
            |(packet_id, codes)| {
                Packet::SubAck(SubAck {
                    packet_id,
                    properties: Properties::default(),
                    codes,
                })
            }
        ),
        (id, proptest::collection::vec(text(), 1..4)).prop_map(|(packet_id, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: Properties::default(),
                filters,
            })
        }),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        (any::<bool>(), 0u8..6, properties(v5)).prop_map(move |(sp, code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: sp,
                code,
                properties,
            })
        }),
    ]
}

fn connect(level: Level) -> impl Strategy<Value = Packet> {
    (
        text(),
        any::<bool>(),
        any::<u16>(),
        proptest::option::of(text()),
        proptest::option::of((
            text(),
            proptest::collection::vec(any::<u8>(), 0..16),
            0u8..3,
            any::<bool>(),
        )),
    )
        .prop_map(move |(client_id, clean_start, keep_alive, user, will)| {
            Packet::Connect(Box::new(Connect {
                level,
                client_id,
                clean_start,
                keep_alive,
                password: user.as_ref().map(|u| Bytes::from(format!("pw-{u}"))),
                username: user,
                will: will.map(|(topic, payload, qos, retain)| Will {
                    topic,
                    payload: Bytes::from(payload),
                    qos,
                    retain,
                    properties: Properties::default(),
                }),
                properties: Properties::default(),
            }))
        })
}

/// Feeds `bytes` in pieces cut at `cuts` and decodes what is whole.
fn decode_split(bytes: &[u8], cuts: &[usize], level: Option<Level>) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&bytes[at..p.max(at)]);
        at = p.max(at);
        while let Some(packet) = decode(&mut buf, level, 1 << 20).expect("valid bytes") {
            out.push(packet);
        }
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #[test]
    fn packets_survive_encode_and_decode(
        (level, packets) in prop_oneof![Just(LEVEL_311), Just(LEVEL_5)]
            .prop_flat_map(|l| (Just(l), proptest::collection::vec(packet(l), 1..6))),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut bytes = BytesMut::new();
        for p in &packets {
            p.encode(level, &mut bytes);
        }
        prop_assert_eq!(decode_split(&bytes, &cuts, Some(level)), packets);
    }

    #[test]
    fn connect_survives_encode_and_decode(
        p in prop_oneof![connect(LEVEL_311), connect(LEVEL_5)],
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut bytes = BytesMut::new();
        p.encode(LEVEL_5, &mut bytes);
        prop_assert_eq!(decode_split(&bytes, &cuts, None), vec![p]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                   level in proptest::option::of(3u8..6)) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decode(&mut buf, level, 1 << 16) {}
    }
}

#[test]
fn a_paho_311_connect_decodes() {
    // Captured from paho-mqtt 2.1.0: MQTTv311, client id "c1", clean
    // session, keepalive 60, user and password "guest", will "w/t" = "bye"
    // at QoS 1, retained.
    let mut buf = BytesMut::from(
        &b"\x10&\x00\x04MQTT\x04\xee\x00<\x00\x02c1\x00\x03w/t\x00\x03bye\x00\x05guest\x00\x05guest"[..],
    );
    let Some(Packet::Connect(c)) = decode(&mut buf, None, 1024).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.level, LEVEL_311);
    assert_eq!(c.client_id, "c1");
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert_eq!(c.username.as_deref(), Some("guest"));
    assert_eq!(c.password.as_deref(), Some(&b"guest"[..]));
    let w = c.will.unwrap();
    assert_eq!(
        (w.topic.as_str(), &w.payload[..], w.qos, w.retain),
        ("w/t", &b"bye"[..], 1, true)
    );
}

#[test]
fn limits_and_malformed_input_are_errors() {
    // The size is refused from the fixed header alone.
    let mut buf = BytesMut::from(&b"\x30\xff\xff\xff\x7f"[..]);
    assert!(matches!(
        decode(&mut buf, Some(LEVEL_311), 1 << 20),
        Err(MqttError::TooLarge { .. })
    ));
    // A fifth length byte.
    let mut buf = BytesMut::from(&b"\x30\xff\xff\xff\xff\x01"[..]);
    assert!(matches!(
        decode(&mut buf, Some(LEVEL_311), usize::MAX),
        Err(MqttError::Malformed(_))
    ));
    // Anything but CONNECT first, and CONNECT twice.
    let mut buf = BytesMut::from(&b"\xc0\x00"[..]);
    assert!(matches!(
        decode(&mut buf, None, 64),
        Err(MqttError::Protocol(_))
    ));
    let mut buf = BytesMut::from(&b"\x10\x00"[..]);
    assert!(matches!(
        decode(&mut buf, Some(LEVEL_311), 64),
        Err(MqttError::Protocol(_))
    ));
    // QoS 3, packet id 0, a topic with U+0000.
    for bytes in [
        &b"\x36\x05\x00\x01a\x00\x01"[..],
        b"\x32\x05\x00\x01a\x00\x00",
        b"\x30\x03\x00\x01\x00",
    ] {
        let mut buf = BytesMut::from(bytes);
        assert!(
            matches!(
                decode(&mut buf, Some(LEVEL_311), 64),
                Err(MqttError::Malformed(_))
            ),
            "{bytes:?}"
        );
    }
    // 3.1.1's UNSUBACK has no reason codes (found by the fuzzer).
    let mut buf = BytesMut::from(&b"\xb0\x04\x00\x07\x00\x11"[..]);
    assert!(matches!(
        decode(&mut buf, Some(LEVEL_311), 64),
        Err(MqttError::Malformed(_))
    ));
    let mut buf = BytesMut::from(&b"\xb0\x04\x00\x07\x00\x11"[..]);
    assert!(matches!(
        decode(&mut buf, Some(LEVEL_5), 64),
        Ok(Some(Packet::UnsubAck(_)))
    ));
    // Protocol level 6.
    let mut buf = BytesMut::from(&b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00"[..]);
    assert_eq!(
        decode(&mut buf, None, 64),
        Err(MqttError::UnsupportedLevel(6))
    );
}

#[test]
fn an_announced_size_is_not_reserved_before_the_bytes_arrive() {
    // A PUBLISH announcing 256 MiB (the largest remaining length), then a
    // few bytes of it: the buffer holds what arrived, not 256 MiB.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"\x30\xff\xff\xff\x7f\x00\x01a");
    assert_eq!(decode(&mut buf, Some(LEVEL_311), usize::MAX), Ok(None));
    assert!(buf.capacity() <= 64, "{}", buf.capacity());
    assert_eq!(&buf[..], b"\x30\xff\xff\xff\x7f\x00\x01a");
}

proptest! {
    /// Fed in arbitrary pieces, a large packet's buffer never holds more
    /// than four times what has arrived (plus what the test itself
    /// reserved), and the packet decodes whole.
    #[test]
    fn buffers_grow_with_the_bytes_that_arrive(
        len in 0usize..200_000,
        pieces in proptest::collection::vec(1usize..70_000, 1..40),
    ) {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: 0,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::from(vec![7u8; len]),
        });
        let mut wire = BytesMut::new();
        packet.encode(LEVEL_311, &mut wire);
        let size = wire.len();
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut got = None;
        for piece in pieces.iter().cycle().take(10_000) {
            let end = (at + piece).min(size);
            // What a reader does: room for this read only.
            buf.reserve(end - at);
            let before = buf.capacity();
            buf.extend_from_slice(&wire[at..end]);
            at = end;
            match decode(&mut buf, Some(LEVEL_311), usize::MAX) {
                Ok(Some(p)) => {
                    got = Some(p);
                    break;
                }
                Ok(None) => {
                    let cap = buf.capacity();
                    // Twice what arrived, which the allocator may round
                    // up to twice again: proportional to the bytes, never
                    // to the announced size.
                    prop_assert!(
                        cap <= before.max(4 * buf.len()),
                        "capacity {} after {} of {} bytes (was {})", cap, buf.len(), size, before
                    );
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
        prop_assert_eq!(got, Some(packet));
    }
}
