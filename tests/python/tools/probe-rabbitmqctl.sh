#!/bin/bash
# Runs rabbitmqctl commands and records stdout, stderr and exit status.
R="rabbitmqctl -n rabbit@localhost"
run() {
  echo "\$ rabbitmqctl $*"
  out=$($R "$@" 2>/tmp/probe/err); rc=$?
  echo "$out" | sed 's/^/  out| /'
  sed 's/^/  err| /' /tmp/probe/err
  echo "  exit $rc"
  echo
}
run add_user lqz 123
run add_user lqz 123
run add_user -q u2 pw2
run add_user
run add_user onlyname
run list_users
run -q list_users
run list_users --formatter json
run set_user_tags lqz administrator
run set_user_tags nosuch administrator
run set_user_tags lqz
run list_users
run authenticate_user lqz 123
run authenticate_user lqz wrong
run authenticate_user nosuch x
run change_password lqz newpw
run change_password nosuch x
run authenticate_user lqz newpw
run clear_password lqz
run authenticate_user lqz newpw
run add_vhost v2
run add_vhost v2
run list_vhosts
run list_vhosts name tracing
run -q list_vhosts
run set_permissions -p / lqz ".*" ".*" ".*"
run set_permissions -p v2 lqz "^cfg" "^w" "^r"
run set_permissions -p nosuch lqz ".*" ".*" ".*"
run set_permissions -p / nosuch ".*" ".*" ".*"
run set_permissions -p / lqz "(" ".*" ".*"
run set_permissions -p / lqz ".*"
run list_permissions
run list_permissions -p v2
run list_permissions -p nosuch
run list_user_permissions lqz
run list_user_permissions nosuch
run set_topic_permissions -p / lqz amq.topic "^{username}" "^x"
run set_topic_permissions -p / lqz amq.topic "(" "^x"
run list_topic_permissions
run list_topic_permissions -p v2
run list_user_topic_permissions lqz
run clear_topic_permissions -p / lqz amq.topic
run clear_topic_permissions -p / lqz
run clear_permissions -p v2 lqz
run clear_permissions -p v2 nosuch
run list_permissions -p v2
run list_queues
run list_queues name messages_ready messages_unacknowledged
run list_queues name durable auto_delete exclusive arguments memory state type consumers messages
run list_exchanges
run list_exchanges name type durable auto_delete internal arguments
run list_bindings
run list_connections
run list_connections name user vhost peer_host peer_port state channels
run list_channels
run list_consumers
run purge_queue nosuch
run delete_queue nosuch
run close_connection "nosuch" "bye"
run close_all_connections "bye"
run delete_vhost v2
run delete_vhost v2
run delete_user u2
run delete_user u2
run list_users
run await_startup
run export_definitions /tmp/probe/defs.json
run export_definitions -
run bogus_command
run list_queues bogus_col
