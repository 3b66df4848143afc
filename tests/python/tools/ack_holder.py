#!/usr/bin/env python3
"""Subprocess consumer for the "worker dies" test: takes messages from a queue and never acks.

    ack_holder.py QUEUE      (broker from AMQP_HOST/AMQP_PORT/AMQP_USER/AMQP_PASS/AMQP_VHOST)

Prints "READY" once consuming, then "GOT <body> <redelivered>" per delivery (flushed), and exits on
its own after 30 s so it can never outlive the test run.
"""
import os
import sys
import time

import pika


def main():
    queue = sys.argv[1]
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=os.environ.get("AMQP_HOST", "127.0.0.1"),
        port=int(os.environ.get("AMQP_PORT", "5672")),
        virtual_host=os.environ.get("AMQP_VHOST", "/"),
        credentials=pika.PlainCredentials(os.environ.get("AMQP_USER", "guest"),
                                          os.environ.get("AMQP_PASS", "guest")),
        connection_attempts=1, socket_timeout=5))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)

    def on_message(_ch, method, _props, body):
        print("GOT %s %s" % (body.decode("utf-8"), method.redelivered), flush=True)

    ch.basic_consume(queue, on_message, auto_ack=False)
    print("READY", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)


if __name__ == "__main__":
    main()
