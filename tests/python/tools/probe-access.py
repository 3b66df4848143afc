"""Probe access control: each AMQP operation, allowed and denied, with the reply code and text."""
import os, subprocess, sys, time
import pika

PORT = int(os.environ.get("AMQP_PORT", "5682"))
CTL = os.environ.get("CTL", "rabbitmqctl -n rabbit@localhost").split()

def ctl(*a):
    r = subprocess.run(CTL + list(a), capture_output=True, text=True)
    return r.returncode

def conn(user, pw, vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", PORT, vhost, pika.PlainCredentials(user, pw)))

def attempt(label, fn, user="acl", pw="pw"):
    try:
        c = conn(user, pw)
    except Exception as e:
        print("%-45s CONNECT %r" % (label, e)); return
    ch = c.channel()
    ch.confirm_delivery()
    try:
        fn(ch)
        # force a round trip so async errors (publish) surface
        ch.queue_declare("acl-probe-sync", passive=False) if False else None
        c.process_data_events(0.3)
        if ch.is_open:
            ch.basic_qos(prefetch_count=0)
        print("%-45s ok" % label)
    except pika.exceptions.ChannelClosedByBroker as e:
        print("%-45s channel %d %s" % (label, e.reply_code, e.reply_text))
    except pika.exceptions.ConnectionClosedByBroker as e:
        print("%-45s connection %d %s" % (label, e.reply_code, e.reply_text))
    except Exception as e:
        print("%-45s other %r" % (label, e))
    finally:
        try:
            c.close()
        except Exception:
            pass

ctl("delete_user", "acl")
ctl("add_user", "acl", "pw")
# setup resources as admin guest
g = conn("guest", "guest"); gch = g.channel()
for q in ["ok-q", "no-q", "amq.gen-x"] if False else ["ok-q", "no-q"]:
    gch.queue_declare(q)
gch.exchange_declare("ok-x", "direct"); gch.exchange_declare("no-x", "direct"); gch.exchange_declare("tx", "topic")
gch.queue_bind("ok-q", "ok-x", "k"); 
gch.basic_publish("", "ok-q", b"m"); gch.basic_publish("", "no-q", b"m")
g.close()
# configure: ^(ok-.*|amq\.gen.*)$ ; write: ^(ok-.*|amq\.default|tx)$ ; read: ^(ok-.*|tx)$
ctl("set_permissions", "-p", "/", "acl", "^(ok-.*|amq\\.gen.*)$", "^(ok-.*|amq\\.default|tx|amq\\.gen.*)$", "^(ok-.*|tx|amq\\.gen.*)$")

attempt("queue.declare allowed", lambda ch: ch.queue_declare("ok-new"))
attempt("queue.declare denied", lambda ch: ch.queue_declare("no-new"))
attempt("queue.declare passive on denied", lambda ch: ch.queue_declare("no-q", passive=True))
attempt("queue.declare server-named", lambda ch: ch.queue_declare("", exclusive=True))
attempt("exchange.declare allowed", lambda ch: ch.exchange_declare("ok-newx", "direct"))
attempt("exchange.declare denied", lambda ch: ch.exchange_declare("no-newx", "direct"))
attempt("exchange.declare passive denied-name", lambda ch: ch.exchange_declare("no-x", "direct", passive=True))
attempt("queue.delete denied", lambda ch: ch.queue_delete("no-q"))
attempt("exchange.delete denied", lambda ch: ch.exchange_delete("no-x"))
attempt("queue.bind allowed", lambda ch: ch.queue_bind("ok-q", "ok-x", "k2"))
attempt("queue.bind denied (read on exchange)", lambda ch: ch.queue_bind("ok-q", "no-x", "k"))
attempt("queue.bind denied (write on queue)", lambda ch: ch.queue_bind("no-q", "ok-x", "k"))
attempt("exchange.bind denied (read source)", lambda ch: ch.exchange_bind("ok-x", "no-x", "k"))
attempt("exchange.bind denied (write dest)", lambda ch: ch.exchange_bind("no-x", "ok-x", "k"))
attempt("publish allowed default", lambda ch: ch.basic_publish("", "ok-q", b"m"))
attempt("publish allowed ok-x", lambda ch: ch.basic_publish("ok-x", "k", b"m"))
attempt("publish denied no-x", lambda ch: ch.basic_publish("no-x", "k", b"m"))
attempt("publish to amq.direct denied", lambda ch: ch.basic_publish("amq.direct", "k", b"m"))
attempt("basic.get allowed", lambda ch: ch.basic_get("ok-q"))
attempt("basic.get denied", lambda ch: ch.basic_get("no-q"))
attempt("basic.consume denied", lambda ch: ch.basic_consume("no-q", lambda *a: None))
attempt("queue.purge denied", lambda ch: ch.queue_purge("no-q"))
attempt("queue.declare with DLX denied-write", lambda ch: ch.queue_declare("ok-dlx", arguments={"x-dead-letter-exchange": "no-x"}))
attempt("exchange.declare with AE denied", lambda ch: ch.exchange_declare("ok-ae", "direct", arguments={"alternate-exchange": "no-x"}))
# topic permissions
ctl("set_topic_permissions", "-p", "/", "acl", "tx", "^{username}\\.", "^r\\.")
attempt("topic publish allowed", lambda ch: ch.basic_publish("tx", "acl.x", b"m"))
attempt("topic publish denied", lambda ch: ch.basic_publish("tx", "other.x", b"m"))
def bind_topic(key):
    def f(ch):
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "tx", key)
    return f
attempt("topic bind allowed", bind_topic("r.a"))
attempt("topic bind denied", bind_topic("x.a"))
ctl("clear_topic_permissions", "-p", "/", "acl")
# vhost access
attempt("no permissions in vhost", lambda ch: None, user="acl")
ctl("clear_permissions", "-p", "/", "acl")
try:
    conn("acl", "pw")
    print("connect without permissions: ok?!")
except pika.exceptions.ProbableAccessDeniedError as e:
    print("connect without permissions:", repr(e))
except Exception as e:
    print("connect without permissions:", repr(e))
# permission change on an open connection
ctl("set_permissions", "-p", "/", "acl", ".*", ".*", ".*")
c = conn("acl", "pw"); ch = c.channel(); ch.confirm_delivery(); ch.queue_declare("ok-live"); ch.basic_publish("", "ok-live", b"1")
ctl("set_permissions", "-p", "/", "acl", ".*", "^$", ".*")
try:
    ch.basic_publish("", "ok-live", b"2"); c.process_data_events(0.5); ch.basic_qos(prefetch_count=0)
    print("publish after revoke: ok")
except Exception as e:
    print("publish after revoke:", repr(e))
# deleted user with open connection
ctl("set_permissions", "-p", "/", "acl", ".*", ".*", ".*")
c = conn("acl", "pw"); ch = c.channel()
ctl("delete_user", "acl")
try:
    time.sleep(1); c.process_data_events(1); ch.queue_declare("ok-after-delete")
    print("deleted user's connection: still works")
except Exception as e:
    print("deleted user's connection:", repr(e))
# vhost deletion with open connection
ctl("add_vhost", "vdel"); ctl("set_permissions", "-p", "vdel", "guest", ".*", ".*", ".*")
c = conn("guest", "guest", "vdel"); ch = c.channel(); ch.queue_declare("vq")
ctl("delete_vhost", "vdel")
try:
    time.sleep(1); c.process_data_events(1); ch.queue_declare("vq2")
    print("deleted vhost's connection: still works")
except Exception as e:
    print("deleted vhost's connection:", repr(e))
# user without password
ctl("add_user", "nopw", "x"); ctl("clear_password", "nopw"); ctl("set_permissions", "-p", "/", "nopw", ".*", ".*", ".*")
try:
    conn("nopw", "")
    print("login without password: ok")
except Exception as e:
    print("login without password:", repr(e))
ctl("delete_user", "nopw")
