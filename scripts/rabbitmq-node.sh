#!/usr/bin/env bash
# A private RabbitMQ node for the tests: bound to 127.0.0.1 on non-default ports (AMQP 5682, management HTTP API
# 15682, distribution 45682, epmd 44382), its data, logs and Erlang cookie in a folder of its own, so it never touches
# a RabbitMQ the machine already runs. The management plugin samples queue counters every 500 ms.
#
#   scripts/rabbitmq-node.sh start DIR   installs rabbitmq-server from apt if it is missing (needs root), starts the
#                                        node, waits until it answers (60 s at most) and prints its AMQP URL as the last
#                                        line; exits non-zero, saying why, when it cannot
#   scripts/rabbitmq-node.sh stop DIR    stops the node by its process id, then its epmd, and removes DIR
#   scripts/rabbitmq-node.sh ctl DIR ARGS...  runs rabbitmqctl ARGS on the node (for example close_all_connections
#                                        "test", or stop_app then start_app: what the recovery tests do)
#
# The tests find the node through MQ_RABBITMQ_URL (for example amqp://guest:guest@127.0.0.1:5682/) and its management
# API through MQ_RABBITMQ_MANAGEMENT_URL (http://127.0.0.1:15682/); the tests that restart a node use a second one
# (MQ_NODE_OFFSET=3: amqp://guest:guest@127.0.0.1:5685/) through MQ_RABBITMQ_RESTART_URL and MQ_RABBITMQ_NODE_DIR.
# Without MQ_RABBITMQ_URL they are reported as skipped. (Ports 35672-35682 are avoided: RabbitMQ's command-line tools use them.)
set -uo pipefail
command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
# A second node (for the tests that restart theirs, so that other test projects running meanwhile keep theirs):
# MQ_NODE_OFFSET=3 at start moves every port up by 3 (AMQP 5685, ...) and names the node mqtest3; DIR remembers it.
if [ "$command" = start ]; then
  offset="${MQ_NODE_OFFSET:-0}"
else
  offset=$(cat "$dir/offset" 2>/dev/null || echo 0)
fi
amqp_port=$((5682 + offset))
management_port=$((15682 + offset))
export HOME="$dir"
export RABBITMQ_NODENAME="mqtest$([ "$offset" -eq 0 ] || echo "$offset")@localhost"
export RABBITMQ_DIST_PORT=$((45682 + offset))
export ERL_EPMD_PORT=$((44382 + offset))
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
export RABBITMQ_PID_FILE="$dir/node.pid"
bin=/usr/lib/rabbitmq/bin

case "$command" in
  start)
    if [ ! -x "$bin/rabbitmq-server" ]; then
      if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "rabbitmq-server is not installed and cannot be installed here (needs root and apt-get)" >&2
        exit 1
      fi
      echo "installing rabbitmq-server from apt" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server) >"${TMPDIR:-/tmp}/rabbitmq-apt.log" 2>&1 \
        || { echo "apt-get could not install rabbitmq-server (log: ${TMPDIR:-/tmp}/rabbitmq-apt.log)" >&2; exit 1; }
    fi
    mkdir -p "$dir"
    echo "$offset" > "$dir/offset"
    echo "[rabbitmq_management]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users.guest = true\nmanagement.tcp.port = %s\nmanagement.tcp.ip = 127.0.0.1\ncollect_statistics_interval = 500\n' \
      "$amqp_port" "$management_port" > "$dir/rabbitmq.conf"
    "$bin/rabbitmq-server" >"$dir/server.log" 2>&1 &
    for _ in $(seq 1 120); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null && "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup --timeout 5 >/dev/null 2>&1; then
        echo "amqp://guest:guest@127.0.0.1:$amqp_port/"
        exit 0
      fi
      sleep 0.5
    done
    echo "the RabbitMQ node did not answer on 127.0.0.1:$amqp_port within 60 s (log: $dir/server.log)" >&2
    "$0" stop "$dir" >/dev/null 2>&1
    exit 1
    ;;
  stop)
    if [ -f "$RABBITMQ_PID_FILE" ]; then
      pid=$(cat "$RABBITMQ_PID_FILE")
      kill "$pid" 2>/dev/null
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null
    fi
    command -v epmd >/dev/null 2>&1 && epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1
    [ -x /usr/lib/erlang/bin/epmd ] && /usr/lib/erlang/bin/epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1
    rm -rf "$dir"
    exit 0
    ;;
  ctl)
    shift 2
    exec "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" "$@"
    ;;
  *)
    echo "usage: $0 start|stop DIR | ctl DIR ARGS..." >&2
    exit 2
    ;;
esac
