#!/usr/bin/env bash
# A private three-node RabbitMQ cluster for the cluster test (issue 19, point 4): nodes mqc1, mqc2 and mqc3@localhost,
# bound to 127.0.0.1 on non-default ports (AMQP 5691, 5692, 5693; distribution 45691-45693; one epmd on 44391), their
# data, logs and shared Erlang cookie under DIR. Nothing of the single test node (scripts/rabbitmq-node.sh) is shared.
#
#   scripts/rabbitmq-cluster.sh start DIR        installs rabbitmq-server from apt if missing, starts the three nodes,
#                                                joins mqc2 and mqc3 to mqc1, and prints the three AMQP URLs, comma-
#                                                separated, as the last line; exits non-zero, saying why, when it cannot
#   scripts/rabbitmq-cluster.sh stop DIR         stops every node by its process id, then epmd, and removes DIR
#   scripts/rabbitmq-cluster.sh ctl DIR N ARGS   runs rabbitmqctl ARGS on node N (1-3)
#   scripts/rabbitmq-cluster.sh kill DIR N       kill -9 of node N's process (what the test does to a queue's leader)
#   scripts/rabbitmq-cluster.sh revive DIR N     starts node N again (it rejoins the cluster) and waits until it answers
#
# The cluster test finds it through MQ_RABBITMQ_CLUSTER_URLS and MQ_RABBITMQ_CLUSTER_DIR; without them it is skipped.
set -uo pipefail
command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR | ctl DIR N ARGS... | kill DIR N" >&2; exit 2; }
bin=/usr/lib/rabbitmq/bin
export HOME="$dir" # the cookie, shared by the three nodes
export ERL_EPMD_PORT=44391
export ERL_EPMD_ADDRESS=127.0.0.1

node_env() { # N: the environment of node N
  local n="$1"
  export RABBITMQ_NODENAME="mqc$n@localhost"
  export RABBITMQ_DIST_PORT=$((45690 + n))
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$dir/n$n/mnesia"
  export RABBITMQ_LOG_BASE="$dir/n$n/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/n$n/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$dir/n$n/rabbitmq"
  export RABBITMQ_PID_FILE="$dir/n$n/node.pid"
}

ctl() { # N ARGS...
  local n="$1"; shift
  (node_env "$n"; "$bin/rabbitmqctl" -q -n "mqc$n@localhost" "$@")
}

wait_up() { # N
  local n="$1"
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$((5690 + n))") 2>/dev/null && ctl "$n" await_startup --timeout 5 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "node mqc$n did not answer within 60 s (log: $dir/n$n/server.log)" >&2
  return 1
}

case "$command" in
  start)
    if [ ! -x "$bin/rabbitmq-server" ]; then
      if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "rabbitmq-server is not installed and cannot be installed here (needs root and apt-get)" >&2
        exit 1
      fi
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server) >"${TMPDIR:-/tmp}/rabbitmq-apt.log" 2>&1 \
        || { echo "apt-get could not install rabbitmq-server (log: ${TMPDIR:-/tmp}/rabbitmq-apt.log)" >&2; exit 1; }
    fi
    for n in 1 2 3; do
      mkdir -p "$dir/n$n"
      echo "[]." > "$dir/n$n/enabled_plugins"
      printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users.guest = true\n' "$((5690 + n))" > "$dir/n$n/rabbitmq.conf"
      (node_env "$n"; "$bin/rabbitmq-server" >"$dir/n$n/server.log" 2>&1 &)
      if [ "$n" -eq 1 ]; then
        wait_up 1 || { "$0" stop "$dir" >/dev/null 2>&1; exit 1; } # writes the cookie the others share
      fi
    done
    for n in 2 3; do
      wait_up "$n" || { "$0" stop "$dir" >/dev/null 2>&1; exit 1; }
      if ! { ctl "$n" stop_app && ctl "$n" join_cluster mqc1@localhost && ctl "$n" start_app; } >"$dir/n$n/join.log" 2>&1; then
        echo "node mqc$n could not join the cluster (log: $dir/n$n/join.log)" >&2
        "$0" stop "$dir" >/dev/null 2>&1
        exit 1
      fi
    done
    echo "amqp://guest:guest@127.0.0.1:5691/,amqp://guest:guest@127.0.0.1:5692/,amqp://guest:guest@127.0.0.1:5693/"
    ;;
  stop)
    for n in 1 2 3; do
      if [ -f "$dir/n$n/node.pid" ]; then
        pid=$(cat "$dir/n$n/node.pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null
      fi
    done
    command -v epmd >/dev/null 2>&1 && epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1
    [ -x /usr/lib/erlang/bin/epmd ] && /usr/lib/erlang/bin/epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1
    rm -rf "$dir"
    ;;
  ctl)
    n="${3:?node number}"; shift 3
    ctl "$n" "$@"
    ;;
  kill)
    n="${3:?node number}"
    kill -9 "$(cat "$dir/n$n/node.pid")"
    ;;
  revive)
    n="${3:?node number}"
    (node_env "$n"; "$bin/rabbitmq-server" >>"$dir/n$n/server.log" 2>&1 &)
    wait_up "$n"
    ;;
  *)
    echo "usage: $0 start|stop DIR | ctl DIR N ARGS... | kill|revive DIR N" >&2
    exit 2
    ;;
esac
