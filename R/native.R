# mirai: the native entry points ---------------------------------------------------

# Every call into the Rust binding goes through this file, one function per
# routine it exports, named as the routine is (`wrap__host_status` is
# `host_status()`), except on the per-task path, which calls six routines
# directly (an R function call there costs as much as the routine):
# `host_submit` in submit_task(), `mirai_object` in new_mirai(), `task_ready`
# and `task_settle` in mirai_data(), and `daemon_recv` and `daemon_send` in
# a daemon's loop. Those six are the binding's `direct__` routines, called
# without extendr's wrapper (see the binding's direct.rs).
#
# Handles are external pointers owned by the binding:
# `host` (a compute profile's listener and dispatcher), `task` (one
# submission), `link` (a daemon's connection to its host), `relay` (a
# standalone dispatcher's link, relaying to a host of its own) and `process`
# (a launched R process). Times are integer milliseconds.

# Host -----------------------------------------------------------------------------

host_listen <- function(urls, dispatcher, token, max_bytes, version, tls, retries,
                        max_queue_bytes, stream = NULL, max_greeting = 0, link_timeout = 0)
  .Call(wrap__host_listen, urls, dispatcher, token, max_bytes, version, tls, retries,
        max_queue_bytes, stream, max_greeting, link_timeout)

host_urls <- function(host) .Call(wrap__host_urls, host)

host_tls_ca <- function(host) .Call(wrap__host_tls_ca, host)

host_serial <- function(host, out_hook, in_hook)
  .Call(wrap__host_serial, host, out_hook, in_hook)

host_submit <- function(host, task, timeout, wait_for_room)
  .Call(direct__host_submit, host, task, timeout, wait_for_room)

host_everywhere <- function(host, task, min) .Call(wrap__host_everywhere, host, task, min)

host_broadcast <- function(host, task) .Call(wrap__host_broadcast, host, task)

host_connections <- function(host) .Call(wrap__host_connections, host)

host_wait_connections <- function(host, n, ms) .Call(wrap__host_wait_connections, host, n, ms)

host_status <- function(host) .Call(wrap__host_status, host)

host_close <- function(host, exit) .Call(wrap__host_close, host, exit)

host_heal <- function(host, processes, stdin) .Call(wrap__host_heal, host, processes, stdin)

# Task -----------------------------------------------------------------------------

task_ready <- function(task) .Call(direct__task_ready, task)

task_wait <- function(task, ms) .Call(wrap__task_wait, task, ms)

task_wait_room <- function(task, ms) .Call(wrap__task_wait_room, task, ms)

tasks_wait_any <- function(tasks, ms) .Call(wrap__tasks_wait_any, tasks, ms)

task_cancel <- function(task) .Call(wrap__task_cancel, task)

task_on_resolve <- function(task, callback) .Call(wrap__task_on_resolve, task, callback)

task_value <- function(task) .Call(wrap__task_value, task)

task_settle <- function(task, mirai) .Call(direct__task_settle, task, mirai)

mirai_object <- function(task, data_function, class)
  .Call(direct__mirai_object, task, data_function, class)

# Daemon link ----------------------------------------------------------------------

# With a host handle `relay_to`, a relay to that host's daemons (a `relay`).
daemon_connect <- function(url, asyncdial, token, max_bytes, version, tls_ca, relay_to = NULL)
  .Call(wrap__daemon_connect, url, asyncdial, token, max_bytes, version, tls_ca, relay_to)

daemon_wait_connected <- function(link, ms) .Call(wrap__daemon_wait_connected, link, ms)

daemon_serial <- function(link, out_hook, in_hook)
  .Call(wrap__daemon_serial, link, out_hook, in_hook)

daemon_signal_when_lost <- function(link, signal)
  .Call(wrap__daemon_signal_when_lost, link, signal)

daemon_recv <- function(link, ms) .Call(direct__daemon_recv, link, ms)

daemon_send <- function(link, value, id = NULL) .Call(direct__daemon_send, link, value, id)

daemon_leave <- function(link) .Call(wrap__daemon_leave, link)

daemon_take_cancel_signal <- function(link) .Call(wrap__daemon_take_cancel_signal, link)

daemon_rng_stream <- function(link) .Call(wrap__daemon_rng_stream, link)

daemon_close <- function(link) .Call(wrap__daemon_close, link)

# Relay (a standalone dispatcher; made by daemon_connect) -------------------------

relay_wait <- function(relay, ms) .Call(wrap__relay_wait, relay, ms)

relay_close <- function(relay) .Call(wrap__relay_close, relay)

# Process --------------------------------------------------------------------------

process_spawn <- function(program, args, env_names, env_values, unset, forward, stdin = NULL)
  .Call(wrap__process_spawn, program, args, env_names, env_values, unset, forward, stdin)

process_exit_status <- function(process) .Call(wrap__process_exit_status, process)

process_kill <- function(process) .Call(wrap__process_kill, process)

process_pid <- function(process) .Call(wrap__process_pid, process)

# The R session --------------------------------------------------------------------

log_line <- function(line) .Call(wrap__log_line, line)

random_hex <- function(nbytes) .Call(wrap__random_hex, nbytes)

net_interfaces <- function() .Call(wrap__net_interfaces)

remove_globals <- function(names) .Call(wrap__remove_globals, names)

serial_bytes <- function(x) .Call(wrap__serial_bytes, x)
