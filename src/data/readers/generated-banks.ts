// The content of the seeded template generators: STARWEAVE-domain scenarios per category, each with
// several phrasings of the question, an answer, and follow-up turns. {slots} are filled from SLOTS.
import type { Category } from '../schema.js';

export interface Turn {
  q: string[];
  a: string;
}

export interface Scenario {
  id: string;
  category: Category;
  turns: Turn[];
}

export const SLOTS: Record<string, string[]> = {
  node: ['starweave@weave-01', 'starweave@weave-02', 'starweave@edge-03', 'starweave@lab-a', 'starweave@core-07', 'starweave@ingest-2'],
  peer: ['starweave@weave-04', 'starweave@edge-05', 'starweave@core-02', 'starweave@lab-b'],
  worker: ['Starweave.Patterns.Matcher', 'Starweave.Memory.Consolidator', 'Starweave.Perception.Ingest', 'Starweave.Cortex.Planner', 'Starweave.Memory.Episodic', 'Starweave.Patterns.Detector'],
  registry: ['Starweave.Registry', 'Starweave.PatternRegistry', 'Starweave.SessionRegistry'],
  ms: ['5000', '15000', '250', '800', '30000', '1200'],
  count: ['3', '5', '12', '40', '7', '250'],
  window: ['30 seconds', '5 minutes', '500 events', '10 seconds', '2,000 events'],
  pattern: ['a rising sawtooth in request latency', 'bursts of identical queries from one session', 'a daily spike at 09:00 UTC', 'alternating success and timeout replies', 'a slow drift in embedding similarity', 'three failed handshakes followed by a success'],
  signal: ['CPU load on the ingest nodes', 'message queue length of the matcher', 'the rate of :nodedown events', 'memory retrieval latency', 'pattern match confidence scores', 'ETS table sizes'],
  topic: ['supervision trees', 'the pattern cache', 'episodic memory', 'the planner', 'node discovery', 'hot code upgrades'],
  user: ['Ada', 'Ravi', 'Mei', 'Tomasz', 'Lena', 'Kofi'],
  table: [':pattern_cache', ':episodes', ':session_state', ':feature_index'],
};

export const SYSTEM_PROMPTS = [
  'You are the STARWEAVE assistant. Answer precisely, with Elixir/OTP specifics where they help.',
  'You help engineers operate STARWEAVE, a distributed cognitive architecture running on the BEAM.',
  'You are an expert in STARWEAVE internals: pattern recognition, memory, and OTP-based distribution.',
];

export const SCENARIOS: Scenario[] = [
  // ---- pattern recognition -------------------------------------------------------------------
  {
    id: 'pr-detect-periodic',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['We keep seeing {pattern} in {signal}. How should STARWEAVE detect it automatically?', 'How would you set up a detector for {pattern} in {signal}?', 'Is there a good way to catch {pattern} in {signal} before it becomes an incident?'],
        a: 'Treat it as a windowed pattern over a stream. Feed {signal} into a `Starweave.Patterns.Detector` with a sliding window of {window}, and compute two features per window: the autocorrelation at the suspected period and the ratio of the window maximum to its median. A periodic pattern shows a clear autocorrelation peak; a burst shows a high max/median ratio without one. Emit a `{:pattern, :periodic, confidence}` event only when the feature stays above threshold for two consecutive windows, which filters out one-off noise.',
      },
      {
        q: ['What threshold should we start with?', 'How do I choose the confidence threshold?'],
        a: 'Start from data, not a guess: replay a week of {signal} through the detector in shadow mode, log the confidence of every window, and set the threshold at the 99th percentile of windows you know were normal. Then review the first {count} alerts by hand and move the threshold up if more than a few are false positives.',
      },
    ],
  },
  {
    id: 'pr-evolution',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['A pattern we learned last month now matches far less often. Did the pattern change or did the detector break?', 'Our learned pattern for {signal} has started to miss. How do I tell drift from a bug?'],
        a: 'Separate the two by replaying. Run last month\'s recorded input through the current detector: if it still matches at the old rate, the detector is fine and the input has drifted. If it no longer matches, a code or config change broke it, and `git log` on the detector together with the pattern registry history will show when. Drift is expected in STARWEAVE: patterns evolve, so the registry keeps versions and lets a new variant be learned beside the old one instead of overwriting it.',
      },
      {
        q: ['And if it is drift, how do we adapt without losing the old pattern?', 'How do we keep both versions of the pattern?'],
        a: 'Register the new variant as a child of the old pattern in {registry} with its own id and a `derived_from` link. Both stay active; the matcher reports which variant matched, so you can watch the old one fade out. Retire the parent only after it has not matched for a full observation period, and keep it archived so a recurrence is recognised immediately.',
      },
    ],
  },
  {
    id: 'pr-edge-overlap',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['Two patterns overlap: one window matches both. Which one wins?', 'What happens when an event window matches two registered patterns at once?'],
        a: 'Neither wins by default: the matcher emits both matches with their confidences, because overlapping patterns are often related (a burst inside a periodic spike). Resolution is the consumer\'s job. If you need a single label, configure a priority list in the pattern registry, or let the planner pick the match with the higher confidence and keep the other as supporting evidence.',
      },
    ],
  },
  {
    id: 'pr-edge-sparse',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['How does pattern matching behave when the stream is very sparse, say one event every few minutes?', 'Our sensor stream is sparse. Will the sliding-window detector still work?'],
        a: 'A count-based window of {window} can take hours to fill on a sparse stream, so matches come late and the features are noisy. Use a time-based window instead, and require a minimum number of events per window before computing features; windows under that minimum are reported as `:insufficient_data` rather than as "no match". That distinction matters: absence of evidence must not be stored as evidence of absence in memory.',
      },
    ],
  },
  {
    id: 'pr-anomaly-vs-pattern',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['What is the difference between an anomaly and a pattern in STARWEAVE?', 'Is an anomaly just a pattern we have not seen before?'],
        a: 'In STARWEAVE a pattern is a structure that recurs and has been registered, with a description and a detector. An anomaly is an observation that the current model of normal behaviour explains poorly. An anomaly that keeps recurring is a candidate pattern: the consolidator collects similar anomalies, and once a cluster is stable over several windows it proposes a new pattern for review. So yes, informally, a recurring anomaly is a pattern that has not been named yet.',
      },
      {
        q: ['Who reviews the proposed patterns?', 'Does that promotion happen automatically?'],
        a: 'Not automatically by default. Proposals land in the review queue with their supporting windows, and an engineer approves, rejects or merges them with an existing pattern. You can enable auto-promotion for low-risk signals, but keep review on for anything that drives actions, since a wrongly promoted pattern changes what the planner does.',
      },
    ],
  },
  {
    id: 'pr-features',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['Which features does the matcher compute for a time series window?', 'What feature vector does STARWEAVE build from a window of {signal}?'],
        a: 'For numeric series the matcher computes mean, variance, slope of a least-squares fit, max/median ratio, the number of zero crossings of the detrended series, and autocorrelation at a few candidate lags. For event streams it computes counts per event type, inter-arrival statistics and the entropy of the type distribution. The vector is normalised per signal with running statistics so that one detector can be applied across nodes with different baselines.',
      },
    ],
  },
  {
    id: 'pr-sequence',
    category: 'pattern_recognition',
    turns: [
      {
        q: ['How do I describe a sequence pattern like {pattern}?', 'Can STARWEAVE match ordered sequences of events, for example {pattern}?'],
        a: 'Yes. Sequence patterns are declared as an ordered list of steps with constraints between them, for example `[handshake_failed: 3, handshake_ok: 1]` with a `within: {ms}` gap limit. The matcher compiles that into a small state machine per session, so memory stays proportional to the number of open sessions rather than to the stream length. Partial matches time out after the gap limit and are dropped without an event.',
      },
    ],
  },
  // ---- system interactions -------------------------------------------------------------------
  {
    id: 'si-genserver-timeout',
    category: 'system_interaction',
    turns: [
      {
        q: ['I get `** (exit) exited in: GenServer.call({worker}, :snapshot, {ms})` with a timeout on {node}. What is going on?', '{worker} keeps timing out on GenServer.call after {ms} ms. How do I debug it?', 'Why would a call to {worker} time out on {node}?'],
        a: 'The caller waited {ms} ms and the server did not reply, which almost always means the server process is busy or blocked, not that it is dead. Check its mailbox first: `:erlang.process_info(pid, [:message_queue_len, :current_function, :status])`. A long queue means it cannot keep up; a `current_function` inside a blocking call (a database query, another GenServer.call, a file read) means it is waiting on something else. Do not just raise the timeout: move slow work out of `handle_call` into a Task or reply later with `GenServer.reply/2`.',
      },
      {
        q: ['The queue length is in the thousands. What now?', 'message_queue_len says several thousand. Is that the problem?'],
        a: 'Yes, that is the bottleneck: every call waits behind those messages. Find who sends them (`:sys.get_state` is no help here; trace with `:recon_trace.calls` or look at the senders in `Process.info(pid, :messages)` for a sample). Typical fixes in STARWEAVE are batching casts at the producer, partitioning the work across several workers with a `PartitionSupervisor`, or making the producer apply back-pressure by switching hot casts to calls.',
      },
    ],
  },
  {
    id: 'si-nodedown',
    category: 'system_interaction',
    turns: [
      {
        q: ['{node} keeps logging `:nodedown` for {peer} every few minutes. Where do I start?', 'Why does {peer} flap between up and down as seen from {node}?'],
        a: 'Flapping nodes are usually the net tick timing out: the distribution connection is declared dead when no traffic arrives for about `net_ticktime` seconds (60 by default). Check three things: whether a large message (a big state transfer or a binary) is blocking the distribution channel, whether the host is under CPU or GC pressure so the tick is late, and whether the network path drops packets. `:net_kernel.get_net_ticktime()` and the distribution buffer busy events in the logs (`busy_dist_port`) tell you which.',
      },
      {
        q: ['We do send large snapshots between nodes. Is that enough to cause it?', 'Could our memory snapshot transfers be the cause?'],
        a: 'It can be. A multi-megabyte term sent over distribution occupies the single connection between the two nodes, and the tick waits behind it. Split snapshots into chunks, send them through a dedicated process that yields between chunks, or move bulk transfers off distribution entirely (a file or object store referenced by the message). Raising `+zdbbl` (the distribution buffer busy limit) helps with bursts but not with sustained transfers.',
      },
    ],
  },
  {
    id: 'si-config-pool',
    category: 'system_interaction',
    turns: [
      {
        q: ['How do I configure the number of matcher workers per node?', 'Where is the matcher pool size set, and what is a sensible value?'],
        a: 'It is set in `config/runtime.exs` under `config :starweave, Starweave.Patterns, matcher_pool_size: n`. The default is `System.schedulers_online()`, one worker per scheduler, which is right for CPU-bound matching. Raise it only if matchers spend time waiting on I/O; lower it on nodes that also run ingest, so that ingest keeps headroom. The value is read at boot, so changing it needs a rolling restart of the node.',
      },
    ],
  },
  {
    id: 'si-ets-memory',
    category: 'system_interaction',
    turns: [
      {
        q: ['Memory on {node} grows steadily and `:erlang.memory(:ets)` is most of it. How do I find the culprit?', 'ETS memory keeps growing on {node}. What should I check?'],
        a: 'List tables by size: `:ets.all() |> Enum.map(&{&1, :ets.info(&1, :memory)}) |> Enum.sort_by(&elem(&1, 1), :desc) |> Enum.take(5)`. In STARWEAVE the usual suspect is {table}, which has no eviction of its own. Check that its janitor process is running (it is supervised under the cache supervisor) and that its TTL is configured; a crashed janitor that hit its max restarts leaves the table growing without bound.',
      },
    ],
  },
  {
    id: 'si-restart-intensity',
    category: 'system_interaction',
    turns: [
      {
        q: ['The whole application shut down after {worker} crashed a few times. Why did one worker take everything down?', 'Why does a crash loop in {worker} end with the application stopping?'],
        a: 'Its supervisor exceeded its restart intensity: by default a supervisor allows 3 restarts in 5 seconds, and when a child crashes more often than that the supervisor itself exits. That exit propagates up to the top supervisor and, with the application as `permanent`, stops the node. Fix the crash first; then decide whether {worker} belongs under its own supervisor with a higher `max_restarts` so that a flapping worker is contained instead of escalating.',
      },
      {
        q: ['How do I see the crash reason that started it?', 'Where do I find the original crash?'],
        a: 'The first crash report is in the logs just before the chain of supervisor reports: look for the earliest `[error] GenServer {worker} terminating` line with its reason and stacktrace. If logs rotated, enable `handle_sasl_reports: true` for Logger so that supervisor and crash reports are kept, and consider adding a `:telemetry` handler that counts restarts per child, so that the next crash loop raises an alert before the intensity limit is reached.',
      },
    ],
  },
  {
    id: 'si-model-latency',
    category: 'system_interaction',
    turns: [
      {
        q: ['Responses from the local model through Ollama got slow on {node}. How do I tell whether it is STARWEAVE or the model?', 'LLM replies take seconds longer than last week. Is STARWEAVE adding the latency?'],
        a: 'Measure both sides of the boundary. STARWEAVE emits `[:starweave, :llm, :request, :stop]` telemetry with the duration; Ollama\'s own response includes `eval_duration` and `prompt_eval_duration`. If the model durations account for the time, the model is the cause: a larger prompt (check the context we send), a model that no longer fits in GPU memory and partly runs on CPU, or another process sharing the GPU. If STARWEAVE\'s duration is much larger than Ollama\'s, look at the request queue in the LLM client pool.',
      },
    ],
  },
  {
    id: 'si-hot-upgrade',
    category: 'system_interaction',
    turns: [
      {
        q: ['Can we hot-upgrade the pattern matcher without restarting {node}?', 'Is a hot code upgrade of the matcher safe?'],
        a: 'Technically yes, since the matcher is a GenServer and the BEAM loads the new module while old processes finish, but it is only safe if the state format is unchanged or `code_change/3` converts it. In practice STARWEAVE does rolling restarts: drain the node from the cluster, restart it with the new release, let it rejoin. It is slower but every node always runs one known version, which is easier to reason about when something goes wrong.',
      },
    ],
  },
  {
    id: 'si-cluster-join',
    category: 'system_interaction',
    turns: [
      {
        q: ['A new node does not join the cluster. `Node.list()` is empty on it. What do I check?', 'Why does {node} not see any peers after boot?'],
        a: 'Check in order: the cookie (`Node.get_cookie()` must match the others), the node name (a long name with a resolvable host, `starweave@host`), EPMD reachability (port 4369) and the distribution port range, which must be open between hosts. Then check libcluster: its topology config must include the new node\'s strategy, and its logs say whether it tried to connect. `Node.connect(:"{peer}")` by hand tells you quickly whether the problem is discovery or connectivity.',
      },
    ],
  },
  // ---- code understanding --------------------------------------------------------------------
  {
    id: 'cu-handle-continue',
    category: 'code_understanding',
    turns: [
      {
        q: ['Why does {worker} return `{:ok, state, {:continue, :load}}` from `init/1`?', 'What is `handle_continue` for in {worker}?'],
        a: '`init/1` runs while the supervisor is waiting, so slow work there delays the whole startup of the tree. Returning `{:continue, :load}` lets `init/1` finish immediately and makes the server run `handle_continue(:load, state)` as its very first message, before any call or cast can be processed. It keeps startup fast and still guarantees that nobody sees the half-initialised state.',
      },
      {
        q: ['What if the load fails in handle_continue?', 'And if loading raises?'],
        a: 'Then the process crashes like any other failure and its supervisor restarts it according to its strategy. That is usually what you want: the state is either loaded or the process does not exist. If the data source may be temporarily unavailable, return `{:noreply, state}` with an empty state and schedule a retry with `Process.send_after/3` instead of crashing, so that a down dependency does not exhaust the restart intensity.',
      },
    ],
  },
  {
    id: 'cu-supervisor-strategy',
    category: 'code_understanding',
    turns: [
      {
        q: ['The memory supervisor uses `strategy: :rest_for_one`. Why not `:one_for_one`?', 'Explain why Starweave.Memory.Supervisor is `rest_for_one`.'],
        a: 'With `:rest_for_one`, when a child crashes, the children started after it are restarted too. The memory supervisor starts the ETS owner first, then the consolidator and the episodic store that read from its tables. If the ETS owner dies its tables die with it, so the processes after it hold references to tables that no longer exist; restarting them gives them fresh tables. With `:one_for_one` they would keep running against missing tables and crash one by one later.',
      },
    ],
  },
  {
    id: 'cu-pg-groups',
    category: 'code_understanding',
    turns: [
      {
        q: ['How does STARWEAVE use `:pg` to find matcher processes across the cluster?', 'What does `:pg.get_members(:matchers)` return and who joins that group?'],
        a: 'Each matcher calls `:pg.join(:matchers, self())` in its `init/1`. `:pg` replicates group membership to every connected node, so `:pg.get_members(:matchers)` on any node returns the pids of all matchers in the cluster, and `:pg.get_local_members(:matchers)` only the local ones. Members leave automatically when they exit or when their node disconnects, so the dispatcher never needs its own cleanup. The dispatcher picks a member by hashing the pattern id, which keeps a given pattern on one matcher as long as membership is stable.',
      },
    ],
  },
  {
    id: 'cu-registry-via',
    category: 'code_understanding',
    turns: [
      {
        q: ['What does `{:via, Registry, {{registry}, session_id}}` do in `start_link`?', 'Explain the `:via` tuple we use to name session processes.'],
        a: 'It names the process through {registry} instead of the global atom table: `GenServer.start_link(__MODULE__, arg, name: {:via, Registry, {{registry}, session_id}})` registers the pid under `session_id`, and any call with the same via tuple is routed to it. This avoids creating an atom per session (atoms are never garbage collected) and makes lookups a local ETS read. The registration is removed automatically when the process exits.',
      },
    ],
  },
  {
    id: 'cu-task-async-stream',
    category: 'code_understanding',
    turns: [
      {
        q: ['Why does the ingest code use `Task.async_stream(items, &process/1, max_concurrency: {count}, timeout: {ms})`?', 'What does this line do: `Task.async_stream(batch, &embed/1, max_concurrency: {count})`?'],
        a: 'It processes the items concurrently with at most {count} tasks running at once, returns results in input order, and applies back-pressure: new tasks start only as earlier ones finish, so a huge batch does not spawn a huge number of processes. Each task has its own timeout; by default a timed-out task crashes the caller, so ingest passes `on_timeout: :kill_task` and handles `{:exit, :timeout}` results explicitly.',
      },
    ],
  },
  {
    id: 'cu-telemetry',
    category: 'code_understanding',
    turns: [
      {
        q: ['How do I attach to STARWEAVE\'s telemetry events to measure pattern match latency?', 'Show me how to listen to the matcher\'s telemetry.'],
        a: 'Attach a handler to the span events: `:telemetry.attach("match-latency", [:starweave, :patterns, :match, :stop], &MyHandler.handle/4, nil)`. The handler receives `measurements.duration` in native time units (convert with `System.convert_time_unit(d, :native, :microsecond)`) and metadata with the pattern id and node. Keep handlers fast and non-raising: they run in the process that emits the event, and a handler that raises is detached.',
      },
    ],
  },
  {
    id: 'cu-genstage',
    category: 'code_understanding',
    turns: [
      {
        q: ['Why is the perception pipeline built with GenStage instead of plain GenServers sending messages?', 'What do we gain from GenStage in Starweave.Perception?'],
        a: 'Demand-driven back-pressure. In GenStage consumers ask producers for a number of events, so a slow consumer never receives more than it asked for and producers cannot flood its mailbox. With plain `send` or `cast` there is no such limit, and a slow stage accumulates an unbounded mailbox until the node runs out of memory. The pipeline also gets dispatchers (partitioned or broadcast) for free.',
      },
    ],
  },
  {
    id: 'cu-with',
    category: 'code_understanding',
    turns: [
      {
        q: ['Explain the `with` expression in `Starweave.Cortex.Planner.plan/2`.', 'How does the `with` chain in the planner handle errors?'],
        a: 'Each `<-` clause pattern-matches the result of a step: `{:ok, goal} <- parse_goal(input)`, then `{:ok, context} <- Memory.recall(goal)`, then `{:ok, plan} <- build_plan(goal, context)`. If every match succeeds the `do` block runs. The first result that does not match, typically `{:error, reason}`, is returned as is (or passed to the `else` clauses), skipping the remaining steps. It replaces nested `case` expressions while keeping every failure explicit.',
      },
    ],
  },
  // ---- memory and context management ---------------------------------------------------------
  {
    id: 'mc-recall-earlier',
    category: 'memory_context',
    turns: [
      {
        q: ['I\'m {user}; I run the ingest nodes and we use a {window} window for the detector. Keep that in mind.', 'Context for later: my name is {user}, I own the ingest nodes, and our detector window is {window}.'],
        a: 'Noted, {user}: you run the ingest nodes, and the detector window there is {window}. I\'ll take both into account in the rest of this conversation.',
      },
      {
        q: ['Our false alarm rate went up after we doubled the traffic. Why?', 'Since traffic doubled we get more false alarms. Any idea?'],
        a: 'With your {window} window, doubling the traffic changes what a window contains: a count-based window now covers half the time span, so short bursts weigh more in each window and the max/median feature rises. If the window is time-based instead, each window holds twice the events and the variance estimates get tighter, which should reduce false alarms, so the increase points to a count-based window. Recalibrate the threshold on post-change data, or switch the ingest detectors to a time-based window.',
      },
      {
        q: ['Remind me what window size I told you we use?', 'What did I say our detector window was?'],
        a: 'You said the detector on your ingest nodes uses a {window} window.',
      },
    ],
  },
  {
    id: 'mc-consolidation',
    category: 'memory_context',
    turns: [
      {
        q: ['How does STARWEAVE decide what to keep in long-term memory?', 'What gets consolidated from episodic into long-term memory?'],
        a: 'The consolidator scores each episode by recency, how often it was retrieved, its link to registered patterns, and explicit importance set by the planner. Episodes above a threshold are summarised and written to long-term memory with links to the patterns and entities they mention; the rest decay and are eventually evicted from the episodic store. Consolidation runs periodically and when the episodic store passes its size budget.',
      },
      {
        q: ['So an episode that nobody retrieves is lost?', 'Does an unretrieved episode just disappear?'],
        a: 'Its details are, unless it scored high on another signal: an episode linked to a registered pattern or marked important by the planner is consolidated even if nobody retrieved it. What survives is the summary and its links, not the raw events. If you need raw history for audits, that belongs in the event log, which has its own retention, not in cognitive memory.',
      },
    ],
  },
  {
    id: 'mc-context-budget',
    category: 'memory_context',
    turns: [
      {
        q: ['How does STARWEAVE fit long conversations into the model\'s context window?', 'What happens when a conversation exceeds the model context?'],
        a: 'It keeps a budget. The system prompt and the last few turns are always included verbatim; older turns are replaced by a running summary that the memory service updates every few turns; and relevant long-term memories are retrieved by similarity to the current question and inserted with their sources. When the total still exceeds the budget, retrieved memories are dropped first (lowest score first), then the summary is shortened, never the latest user message.',
      },
    ],
  },
  {
    id: 'mc-multi-session',
    category: 'memory_context',
    turns: [
      {
        q: ['Yesterday I asked you about {topic}. Do you remember what we concluded?', 'Can you pick up where we left off yesterday on {topic}?'],
        a: 'I don\'t have yesterday\'s conversation in this session\'s context. If your STARWEAVE deployment has session memory enabled, the summary of that session is retrievable by your user id; otherwise, tell me the conclusion you remember and I\'ll continue from there.',
      },
      {
        q: ['We concluded that {topic} needs its own supervisor. What\'s the next step?', 'We decided {topic} should get a dedicated supervisor. How do we proceed?'],
        a: 'Then the next step is to define that supervisor\'s children and their start order, choose the strategy (`:one_for_one` if the children are independent, `:rest_for_one` if later ones depend on earlier ones), and set its restart intensity so that a crash loop in {topic} stays contained. Add it to the application tree before the processes that call into it, and add a test that kills a child and checks that the rest of the system keeps serving.',
      },
    ],
  },
  {
    id: 'mc-integrate-knowledge',
    category: 'memory_context',
    turns: [
      {
        q: ['Earlier you said the matcher pool defaults to one worker per scheduler. Our nodes have {count} schedulers. How many matchers is that cluster-wide with 6 nodes?', 'Given the matcher pool default we discussed and {count} schedulers per node, how many matchers run across 6 nodes?'],
        a: 'With the default of one matcher per online scheduler, each node runs {count} matchers, so 6 nodes run 6 × {count} of them in total, all visible through the `:matchers` process group.',
      },
      {
        q: ['And if two of those nodes also run ingest with half the pool?', 'What if two nodes run ingest and use half the default pool?'],
        a: 'Then those two nodes each run half of {count} matchers (rounded down, since the pool size is an integer) and the other four run {count} each. The dispatcher still hashes patterns over all members, so the ingest nodes will receive a proportionally smaller share of patterns only if you weight membership; by default every matcher gets an equal share.',
      },
    ],
  },
  {
    id: 'mc-correction',
    category: 'memory_context',
    turns: [
      {
        q: ['Our production cluster has {count} nodes.', 'For context: production runs {count} nodes.'],
        a: 'Understood: a {count}-node production cluster.',
      },
      {
        q: ['Sorry, I was wrong: it\'s actually 9 nodes, {count} was staging.', 'Correction: {count} is staging, production has 9 nodes.'],
        a: 'Thanks for the correction: production has 9 nodes and staging {count}. I\'ll use 9 for anything about production from here on.',
      },
      {
        q: ['So how many nodes can fail in production before we lose a majority?', 'How many production nodes can we lose while keeping a quorum?'],
        a: 'With 9 nodes in production a majority is 5, so up to 4 nodes can fail and the remaining 5 still form a quorum.',
      },
    ],
  },
];
