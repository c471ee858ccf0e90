-- Generated from Partition (runtime/keys.py) by `python -m runtime.lua_includes`: do not edit.
-- Every key a script touches is built here from the partition prefix P (ARGV[1]), so all
-- carry the partition's hash tag and live in the slot KEYS[1] pins.
local K = {}
function K.run(P, run_id) return P .. 'run:' .. run_id end
function K.submit_stream(P) return P .. 'submit' end
function K.ready(P, queue) return P .. 'ready:' .. queue end
function K.queues(P) return P .. 'queues' end
function K.input(P, run_id) return P .. 'in:' .. run_id end
function K.project_index(P, project) return P .. 'created:' .. project end
function K.project_runs(P, project) return P .. 'runs:' .. project end
function K.alias(P, entry_id) return P .. 'alias:' .. entry_id end
function K.uuid_alias(P, value) return P .. 'uuid:' .. value end
function K.steps(P, run_id) return P .. 'steps:' .. run_id end
function K.events(P, run_id) return P .. 'ev:' .. run_id end
function K.checkpoints(P, run_id) return P .. 'cp:' .. run_id end
function K.children(P, run_id) return P .. 'children:' .. run_id end
function K.dependents(P, run_id) return P .. 'dents:' .. run_id end
function K.deps_pending(P, run_id) return P .. 'deps:' .. run_id end
function K.parent_outputs(P, run_id) return P .. 'pout:' .. run_id end
function K.max_queued(P) return P .. 'maxq' end
function K.admitted(P, scope) return P .. 'adm:' .. scope end
function K.waits_on(P, run_id) return P .. 'wait:' .. run_id end
function K.waiting(P) return P .. 'waiting' end
function K.event(P, key) return P .. 'event:' .. key end
function K.event_waiters(P, key) return P .. 'evw:' .. key end
function K.event_takers(P, key) return P .. 'evt:' .. key end
function K.signals(P, run_id) return P .. 'sig:' .. run_id end
function K.query_state(P, run_id) return P .. 'qstate:' .. run_id end
function K.token(P, token_id) return P .. 'wpt:' .. token_id end
function K.tokens(P) return P .. 'wpts' end
function K.seq(P) return P .. 'seq' end
function K.paused(P) return P .. 'paused' end
function K.records(P, run_id) return P .. 'rec:' .. run_id end
function K.chunks(P, run_id) return P .. 'chunks:' .. run_id end
function K.delayed(P) return P .. 'delayed' end
function K.reaper(P) return P .. 'reaper' end
function K.renewers(P) return P .. 'renewers' end
function K.leased(P) return P .. 'leased' end
function K.jobs_override(P) return P .. 'jobs:override' end
function K.paused_queues(P) return P .. 'paused_queues' end
function K.keyed_group(P, queue, concurrency_key) return P .. 'kready:' .. queue .. '|' .. concurrency_key end
function K.group_turns(P, queue) return P .. 'grr:' .. queue end
function K.lease_sets(P) return P .. 'ccsets' end
function K.job_rate(P, job) return P .. 'rl:' .. job end
function K.key_rate(P, job, rate_key) return P .. 'rlk:' .. job .. '|' .. rate_key end
function K.debounce(P, job, debounce_key) return P .. 'deb:' .. job .. '|' .. debounce_key end
function K.keyed_ready(P, queue) return P .. 'kidx:' .. queue end
function K.groups(P, queue) return P .. 'groups:' .. queue end
function K.waiter(P, node_id) return P .. 'waiter:' .. node_id end
function K.waiters(P, queue) return P .. 'waiters:' .. queue end
function K.handed(P) return P .. 'handed' end
function K.handoff(P, node_id) return P .. 'handoff:' .. node_id end
function K.handoff_taken(P, node_id) return P .. 'taken:' .. node_id end
function K.ttl(P) return P .. 'ttl' end
function K.jobs(P) return P .. 'jobs' end
function K.status(P, status) return P .. 'st:' .. status end
function K.throughput(P, queue, hour) return P .. 'tput:' .. queue .. '|' .. hour end
function K.outbox(P) return P .. 'outbox' end
function K.job_leases(P, job) return P .. 'cc:j:' .. job end
function K.idempotency(P, job, key) return P .. 'idem:' .. job .. '|' .. key end
function K.key_leases(P, job, concurrency_key) return P .. 'cc:k:' .. job .. '|' .. concurrency_key end
function K.shared_limits(P) return P .. 'limits' end
function K.shared_limits_override(P) return P .. 'limits:override' end
function K.pool_leases(P, pool) return P .. 'cc:p:' .. pool end
function K.shared_rate(P, name) return P .. 'rls:' .. name end
-- The leased set's member that keeps it skiplist-encoded, its score, and the score bounds of
-- the leases beside it (runtime/keys.py).
local LEASED_ANCHOR, LEASED_ANCHOR_SCORE = 'leased-set-encoding-anchor:~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~', '+inf'
local LEASED_FROM, LEASED_TO = '-inf', '(+inf'
