defmodule Starweave.FineTune do
  @moduledoc """
  starweave-finetune from Elixir: the fine-tuning engine as an OTP service.

  A supervised process owns a Node.js sidecar started as an Erlang port (`{:packet, 4}` MessagePack
  frames on the sidecar's fds 3 and 4, see docs/PROTOCOL.md). Put it in your supervision tree:

      children = [
        {Starweave.FineTune, workspace: "/srv/starweave/finetune"}
      ]

  and call it like any service. Every function returns `{:ok, result}` or `{:error, reason}`, where
  `reason` is `:timeout` (the work is cancelled in the sidecar), `:sidecar_exited` (it died, or the
  server that owns its port did: waiting callers get it at once, or within 100 ms when the server was
  killed outright; the supervisor restarts it), `:cancelled` (a job was cancelled) or a `Starweave.FineTune.Error` whose
  `code` you can match (`:invalid_params`, `:not_implemented`, `:path_outside_workspace`, ...).

  Results are the sidecar's maps with string keys. Every path in a request is relative to the
  workspace (or absolute inside it); paths that leave it are refused.

  ## Jobs and events

  Long work (dataset builds, training, evaluation and generation) runs as a job. The blocking
  forms (`dataset_build/2`) return the job's result; `start_dataset_build/2` returns `{:ok, job_id}` at
  once and the caller receives `{:starweave_finetune, job_id, %{event: name, data: data, seq: n}}`
  messages, ending with one of the events `"done"`, `"failed"` or `"cancelled"` (or
  `"sidecar_exited"`). Events are flow-controlled: the sidecar sends a window of them and waits for
  credits, which are returned only while subscribers' mailboxes stay short; progress events coalesce,
  so a slow subscriber sees the latest progress, not a backlog.

  ## Options (`start_link/1`, `child_spec/1`)

    * `:name` - the registered name (default `Starweave.FineTune`); other functions take `server: name`
    * `:node` - the node executable (default: `node` on the PATH)
    * `:script` - the sidecar's entry (default: this repository's `dist/src/port/main.js`)
    * `:workspace` - the folder every request path is confined to (default: the current folder)
    * `:timeout` - the default call timeout in ms (default 30_000)
    * `:max_frame_bytes` - the largest frame either side accepts (default 64 MiB)
    * `:shutdown_timeout` - ms to wait for the sidecar to exit before SIGTERM, then SIGKILL (default 5_000)
    * `:event_window` - job events in flight before credits must come back (default 32)
    * `:log_level` - the sidecar's log level (`:debug`, `:info`, `:warning`, `:error`)
    * `:registry` - the deployment registry store, a folder in the workspace (default `.starweave/registry`)
    * `:args`, `:env` - extra sidecar arguments and environment

  Telemetry: where the host has `:telemetry` loaded, `[:starweave_finetune, :call | :job, :start |
  :stop | :exception]` events are emitted (checked at run time; no dependency).
  """

  alias Starweave.FineTune.{Error, Options, Server}

  @type server :: GenServer.server()
  @type reason :: :timeout | :sidecar_exited | :cancelled | Error.t()
  @type result(t) :: {:ok, t} | {:error, reason}
  @type opts :: keyword

  # --------------------------------------------------------------------------------------------- process

  @doc "Starts the sidecar's owner; options are checked first (see the module doc)."
  @spec start_link(keyword) :: GenServer.on_start() | {:error, {:invalid_options, String.t()}}
  def start_link(opts \\ []) do
    case Options.validate(opts) do
      {:ok, o} -> Server.start_link(o)
      {:error, msg} -> {:error, {:invalid_options, msg}}
    end
  end

  @doc "A child spec for a supervision tree; raises `ArgumentError` on invalid options."
  @spec child_spec(keyword) :: Supervisor.child_spec()
  def child_spec(opts) do
    case Options.validate(opts) do
      {:ok, o} ->
        %{
          id: o.name || __MODULE__,
          start: {__MODULE__, :start_link, [opts]},
          # the owner itself waits shutdown_timeout and escalates; give it the time to do so
          shutdown: o.shutdown_timeout + 3_000,
          type: :worker
        }

      {:error, msg} ->
        raise ArgumentError, "Starweave.FineTune: #{msg}"
    end
  end

  @doc "The OS pid of the running sidecar."
  @spec os_pid(opts) :: non_neg_integer
  def os_pid(opts \\ []), do: GenServer.call(server(opts), :os_pid)

  # ------------------------------------------------------------------------------------------- methods

  @doc "The sidecar's facts: package version, protocol, Node, the native core, the method table."
  @spec version(opts) :: result(map)
  def version(opts \\ []), do: call("version", %{}, opts)

  @doc """
  A round trip. With `data: term` the term comes back as it was (wrap raw bytes in
  `%Starweave.FineTune.MsgPack.Bin{}` to send them as MessagePack bin).

      {:ok, %{"pong" => true}} = Starweave.FineTune.ping()
  """
  @spec ping(opts) :: result(map)
  def ping(opts \\ []) do
    case Keyword.get(opts, :data) do
      nil -> call("ping", %{}, opts)
      data -> call("ping", %{"data" => data}, opts)
    end
  end

  @doc """
  Appends live interactions (maps with `messages`, optional `category` and `metadata`) to a collection
  log in the workspace (`log:`, default `"collection-log"`). The reply comes once they are on disk:
  `{:ok, %{"acks" => [%{"segment" => ..., "line" => ...}]}}`.
  """
  @spec collect([map], opts) :: result(map)
  def collect(interactions, opts \\ []) when is_list(interactions) do
    call("collect", compact(%{"interactions" => interactions, "log" => opts[:log]}), opts)
  end

  @doc """
  Runs every stage of the data pipeline on `config` (a config file path in the workspace, or the config
  as a map) without writing a version. Result: `"ok"` (no input rejects), `"report"`, `"firstRejects"`.
  Options: `:base_dir`, `:rejects`, `:strict`, `:subscribe` (receive progress events), `:timeout`.
  """
  @spec dataset_validate(String.t() | map, opts) :: result(map)
  def dataset_validate(config, opts \\ []),
    do: await_job("dataset.validate", dataset_params(config, opts), opts)

  @doc "Builds a dataset version into the store (`:store`, default `.starweave/datasets`); waits for it."
  @spec dataset_build(String.t() | map, opts) :: result(map)
  def dataset_build(config, opts \\ []), do: await_job("dataset.build", dataset_params(config, opts), opts)

  @doc "Starts a dataset build as a job; the caller is subscribed to its events. Returns the job id."
  @spec start_dataset_build(String.t() | map, opts) :: result(String.t())
  def start_dataset_build(config, opts \\ []),
    do: start_job("dataset.build", dataset_params(config, opts), opts)

  @doc "The versions in a store, oldest first."
  @spec dataset_list(opts) :: result([map])
  def dataset_list(opts \\ []), do: call("dataset.list", compact(%{"store" => opts[:store]}), opts)

  @doc "A version's manifest and report (`version`: an id, a unique prefix, a dataset name, or `name~N`)."
  @spec dataset_show(String.t(), opts) :: result(map)
  def dataset_show(version, opts \\ []),
    do: call("dataset.show", compact(%{"version" => version, "store" => opts[:store]}), opts)

  @doc "Records added, removed and moved between two versions."
  @spec dataset_diff(String.t(), String.t(), opts) :: result(map)
  def dataset_diff(from, to, opts \\ []),
    do: call("dataset.diff", compact(%{"from" => from, "to" => to, "store" => opts[:store]}), opts)

  @doc "A Hugging Face model folder in the workspace: normalized config, parameter count, tokenizer."
  @spec model_info(String.t(), opts) :: result(map)
  def model_info(path, opts \\ []), do: call("model.info", %{"path" => path}, opts)

  @doc "Every job the sidecar knows."
  @spec jobs(opts) :: result([map])
  def jobs(opts \\ []), do: call("jobs.list", %{}, opts)

  @doc "One job's status, with its result or error once it has ended."
  @spec job_status(String.t(), opts) :: result(map)
  def job_status(job, opts \\ []), do: call("jobs.status", %{"job" => job}, opts)

  @doc "Cancels a running job; its subscribers receive a `\"cancelled\"` event."
  @spec cancel_job(String.t(), opts) :: result(map)
  def cancel_job(job, opts \\ []), do: call("jobs.cancel", %{"job" => job}, opts)

  @doc """
  Delivers the job's events to the calling process (or `pid:`) as
  `{:starweave_finetune, job_id, %{event: name, data: data, seq: n}}`. Subscribing before the job
  starts is allowed (choose its id with `job:` when starting it).
  """
  @spec subscribe(String.t(), opts) :: :ok
  def subscribe(job, opts \\ []), do: GenServer.call(server(opts), {:subscribe, job, opts[:pid] || self()})

  @doc "Stops delivering the job's events to the calling process (or `pid:`)."
  @spec unsubscribe(String.t(), opts) :: :ok
  def unsubscribe(job, opts \\ []),
    do: GenServer.call(server(opts), {:unsubscribe, job, opts[:pid] || self()})

  @doc """
  Starts a LoRA training run as a job (`%{"config" => "runs/run.json"}`: a run config file in the workspace;
  `"runs_dir"` overrides its output folder) and returns the job id; the caller receives its `"start"`,
  `"step"`, `"eval"` and `"checkpoint"` events. A config that fails its schema is
  `%Error{code: :invalid_params, details: %{"path" => "training.lr", "issues" => [...], "file" => ...}}`.
  """
  @spec train_start(map, opts) :: result(String.t())
  def train_start(params, opts \\ []), do: start_job("train.start", params, opts)

  @doc """
  Continues a training run (its folder, e.g. the `"runDir"` of a `"start"` event) from its latest
  checkpoint as a new job; the caller receives the same events as from `train_start/2`, the `"start"`
  event with `"resumedFromStep"`. This is how a run survives a sidecar that died: the supervisor
  restarts the sidecar, the run is resumed.

  With `parallel: %{"rank" => r, "workers" => n}` the run continues as one worker of a data-parallel run,
  possibly on another number of workers than before (`Starweave.FineTune.Distributed`).
  """
  @spec train_resume(String.t(), opts) :: result(String.t())
  def train_resume(run_dir, opts \\ []),
    do:
      start_job(
        "train.resume",
        with_job(compact(%{"run" => run_dir, "parallel" => opts[:parallel]}), opts),
        opts
      )

  @doc "A training run's status."
  @spec train_status(String.t(), opts) :: result(map)
  def train_status(run, opts \\ []), do: call("train.status", %{"run" => run}, opts)

  @doc "Stops a running training job (its job id) at the next step boundary, after a checkpoint: the job then ends with `\"done\"`, its result's `\"status\"` `\"cancelled\"`."
  @spec train_cancel(String.t(), opts) :: result(map)
  def train_cancel(job, opts \\ []), do: call("train.cancel", %{"job" => job}, opts)

  @doc """
  Answers a data-parallel worker (a `train_start/2` with `"parallel" => %{"rank" => r, "workers" => n}`)
  waiting after its step's `"gradients"` event: `grads` is the sum over all workers of their `"grads"`
  binaries (f32 little-endian), `stats` the sum of their `"stats"` (`[loss_sum, tokens, row_tokens]`).
  The worker then clips, steps and goes on (docs/DISTRIBUTED.md). `nil` gradients: the job's own vector
  as `train_chunk/6` left it.
  """
  @spec train_reduce(String.t(), pos_integer, binary | nil, [number], opts) :: result(map)
  def train_reduce(job, step, grads, stats, opts \\ []) when is_binary(grads) or is_nil(grads) do
    params = %{"job" => job, "step" => step, "stats" => stats}

    params =
      if grads, do: Map.put(params, "grads", %Starweave.FineTune.MsgPack.Bin{data: grads}), else: params

    call("train.reduce", params, opts)
  end

  @doc """
  `a + b` over two f32 little-endian binaries of one length, computed by the sidecar (f32 arithmetic in
  the BEAM would take seconds for an adapter's megabytes). The ring all-reduce of
  `Starweave.FineTune.Distributed` adds in place with `train_chunk/6` instead.
  """
  @spec reduce_add(binary, binary, opts) :: result(binary)
  def reduce_add(a, b, opts \\ []) when is_binary(a) and is_binary(b) do
    alias Starweave.FineTune.MsgPack.Bin

    case call("reduce.add", %{"a" => %Bin{data: a}, "b" => %Bin{data: b}}, opts) do
      {:ok, %{"sum" => sum}} -> {:ok, sum}
      other -> other
    end
  end

  @doc "The absolute workspace folder of a running sidecar (its requests' paths are relative to it)."
  @spec workspace(opts) :: String.t()
  def workspace(opts \\ []), do: GenServer.call(server(opts), :workspace)

  @doc """
  A range `[from, to)` of a waiting data-parallel job's own gradients (a job started with
  `"parallel" => %{..., "inplace" => true}`, after its step's `"gradients"` event): `:get` returns the
  values, `{:add, bin}` adds `bin` into them and returns the sums, `{:set, bin}` overwrites them. The
  steps of an in-place all-reduce; `train_reduce/5` with `nil` gradients then steps on the vector as left.
  """
  @spec train_chunk(
          String.t(),
          pos_integer,
          non_neg_integer,
          non_neg_integer,
          :get | {:add | :set, binary},
          opts
        ) ::
          result(binary | :ok)
  def train_chunk(job, step, from, to, op, opts \\ []) do
    alias Starweave.FineTune.MsgPack.Bin
    base = %{"job" => job, "step" => step, "from" => from, "to" => to}

    params =
      case op do
        :get -> base
        {:add, b} when is_binary(b) -> Map.put(base, "add", %Bin{data: b})
        {:set, b} when is_binary(b) -> Map.put(base, "set", %Bin{data: b})
      end

    case call("train.chunk", params, opts) do
      {:ok, %{"chunk" => c}} -> {:ok, c}
      {:ok, %{"ok" => true}} -> {:ok, :ok}
      other -> other
    end
  end

  @doc "The training runs in the workspace."
  @spec train_list(opts) :: result([map])
  def train_list(opts \\ []), do: call("train.list", %{}, opts)

  @doc """
  Evaluates a model (with a PEFT adapter: the tuned model) on records and waits for the eval report
  (`"tuned"`, `"base"`, `"delta"`, `"gate"`, ... as in a run's eval.json; `"file"` when `output` was given).

  `params`:

    * `"model"` - a Hugging Face model folder in the workspace (required)
    * `"adapter"` - a PEFT LoRA adapter folder (a run's `adapter/`); base vs tuned needs one
    * `"data"` - the records: `%{"store" => s, "version" => v, "split" => "heldout"}` (a dataset version),
      `%{"file" => "heldout.jsonl"}` or `%{"records" => [%{"messages" => [...], "category" => c}]}`
    * `"metrics"` - the run config's `eval.metrics` section (`max_examples`, `generate_examples`,
      `max_new_tokens`, `compare_base`, `gate`)
    * `"max_seq_len"` (default 512), `"output"` (a folder to write eval.json into)

  With `subscribe: true` the caller also receives the job's `"start"` and `"progress"` events
  (`%{"phase" => "tuned" | "base", "scored" => n, "total" => m}`).

      {:ok, %{"tuned" => %{"tokenAccuracy" => acc}, "gate" => %{"passed" => passed}}} =
        Starweave.FineTune.eval_run(%{model: "models/base", adapter: "runs/r1/adapter",
                                      data: %{file: "heldout.jsonl"}}, timeout: 600_000)
  """
  @spec eval_run(map, opts) :: result(map)
  def eval_run(params, opts \\ []), do: await_job("eval.run", with_job(params, opts), opts)

  @doc "Starts an evaluation as a job (see `eval_run/2`); the caller is subscribed to its events. Returns the job id."
  @spec start_eval_run(map, opts) :: result(String.t())
  def start_eval_run(params, opts \\ []), do: start_job("eval.run", with_job(params, opts), opts)

  @doc """
  Starts a generation as a job and returns its id; the caller receives one event per new token,
  `{:starweave_finetune, job, %{event: "token", data: %{"token" => id, "text" => text, "step" => n}}}`
  (`text`: the new text that token completes), then `"done"` with the result (`"text"`, `"tokens"`,
  `"finishReason"`, `"promptTokens"`, `"newTokens"`, `"seconds"`). Tokens are never dropped: when the
  caller falls behind, the sidecar pauses decoding (event credits).

  `params`:

    * `"model"` - a Hugging Face model folder in the workspace; `"adapter"` - a PEFT LoRA adapter folder
    * `"messages"` - a conversation (`[%{"role" => "user", "content" => "..."}]`), rendered with the
      model's chat template; or `"prompt"` - plain text continued as it is
    * the sampling options of the library's generation config: `"maxNewTokens"` (64), `"doSample"`
      (false: greedy), `"temperature"`, `"topK"`, `"topP"`, `"repetitionPenalty"`, `"stopStrings"`,
      `"stopTokenIds"` (default: the model's end tokens), `"seed"`

  The sidecar keeps loaded models (by model and adapter folder); generations on one model take turns.
  """
  @spec generate(map, opts) :: result(String.t())
  def generate(params, opts \\ []), do: start_job("generate", with_job(params, opts), opts)

  @doc """
  The reply as a lazy `Stream` of text pieces (the `"text"` of each token event), for piping into a
  socket or a LiveView as it is generated. Same `params` as `generate/2`; the generation starts when the
  stream is first read. A consumer that stops early (`Enum.take/2`) cancels the job in the sidecar; a
  failed job raises `Starweave.FineTune.Error`, a silence longer than `:timeout` raises too.

      Starweave.FineTune.generate_stream(%{model: "models/base", messages: messages})
      |> Enum.each(&IO.write/1)
  """
  @spec generate_stream(map, opts) :: Enumerable.t()
  def generate_stream(params, opts \\ []) do
    timeout = opts[:timeout] || default_timeout(opts)

    Stream.resource(
      fn ->
        case generate(params, opts) do
          {:ok, job} -> {:running, job}
          {:error, %Error{} = e} -> raise e
          {:error, reason} -> raise Error, code: reason, message: "generate: #{inspect(reason)}"
        end
      end,
      fn
        {:running, job} = acc ->
          receive do
            {:starweave_finetune, ^job, %{event: "token", data: %{"text" => text}}} ->
              {[text], acc}

            {:starweave_finetune, ^job, %{event: "start"}} ->
              {[], acc}

            {:starweave_finetune, ^job, %{event: "done"}} ->
              {:halt, {:done, job}}

            {:starweave_finetune, ^job, %{event: "failed", data: d}} ->
              raise Error.from_wire(d)

            {:starweave_finetune, ^job, %{event: other}} ->
              raise Error, code: :cancelled, message: "generate: the job ended: #{other}"
          after
            timeout ->
              cancel_job(job, opts)
              raise Error, code: :timeout, message: "generate: no token for #{timeout} ms"
          end

        {:done, _} = acc ->
          {:halt, acc}
      end,
      fn
        {:running, job} ->
          # the consumer stopped early: the sidecar stops generating
          cancel_job(job, opts)
          unsubscribe(job, opts)

        {:done, _} ->
          :ok
      end
    )
  end

  @doc """
  Generates and waits for the whole reply: `{:ok, %{"text" => text, "tokens" => ids, "finishReason" => r}}`.
  Same `params` as `generate/2`; with `subscribe: true` the token events come too.

      {:ok, %{"text" => reply}} =
        Starweave.FineTune.generate_text(%{model: "models/base", adapter: "runs/r1/adapter",
          messages: [%{role: "user", content: "What restarts a crashed GenServer?"}], maxNewTokens: 64})
  """
  @spec generate_text(map, opts) :: result(map)
  def generate_text(params, opts \\ []), do: await_job("generate", with_job(params, opts), opts)

  @doc """
  Exports a training run, an adapter or a model and waits for the export's manifest (export.json:
  `"export"`, `"precision"`, `"files"` with sizes and sha256, `"baseModel"`, `"source"`; `"dir"`: the
  output folder, workspace-relative).

  `params`:

    * `"format"` - `"peft"`, `"merged"`, `"gguf"`, `"gguf-adapter"`, `"ollama"` (GGUF + Modelfile) or `"onnx"`
    * `"out"` - the output folder (must be empty unless `"force" => true`)
    * `"run"` (a training run folder) or `"adapter"` (a PEFT adapter folder), and/or `"model"` (the base model)
    * `"dtype"` - `"f32"`, `"f16"`, `"bf16"` (and `"q8_0"` for the GGUF formats)
    * GGUF / Ollama: `"name"`, `"ollamaTemplate"`, `"system"`, `"separateAdapter"`; PEFT: `"baseModelName"`
    * ONNX: `"precision"` (`"f32"` or `"int8"`), `"opset"` (17 or 23), `"externalData"`

      {:ok, %{"files" => files}} =
        Starweave.FineTune.export(%{format: "ollama", run: "runs/r1", out: "exports/r1-ollama", dtype: "q8_0"},
          timeout: 600_000)
  """
  @spec export(map, opts) :: result(map)
  def export(params, opts \\ []), do: await_job("export", with_job(params, opts), opts)

  @doc "Starts an export as a job (see `export/2`); the caller is subscribed to its events. Returns the job id."
  @spec start_export(map, opts) :: result(String.t())
  def start_export(params, opts \\ []), do: start_job("export", with_job(params, opts), opts)

  # ------------------------------------------------------------------ the registry, serving, A/B, monitoring
  # (the sidecar's registry store: its --registry option, default .starweave/registry in the workspace)

  @doc "The registry's versions (with their tags and serving channels) and its channels."
  @spec registry_list(opts) :: result(map)
  def registry_list(opts \\ []), do: call("registry.list", %{}, opts)

  @doc "One version (an id, a tag, a hash prefix or `@channel`): files, lineage, metrics, tests, tags, channels."
  @spec registry_show(String.t(), opts) :: result(map)
  def registry_show(version, opts \\ []), do: call("registry.show", %{"version" => version}, opts)

  @doc """
  Registers an artifact folder (a PEFT adapter, a merged model, a GGUF or ONNX export) or a training run
  folder as a version: `%{"source" => dir}` and optionally `"run"`, `"base"` (the base model of an adapter),
  `"datasetVersion"`, `"notes"`, `"tags"`, `"link"` (`"copy"` or `"hardlink"`), `"metrics"`.
  Result: `%{"version" => %{"id" => id, ...}, "created" => bool}`.
  """
  @spec registry_register(map, opts) :: result(map)
  def registry_register(params, opts \\ []), do: call("registry.register", params, opts)

  @doc "Points a tag at a version."
  @spec registry_tag(String.t(), String.t(), opts) :: result(map)
  def registry_tag(version, tag, opts \\ []),
    do: call("registry.tag", %{"version" => version, "tag" => tag}, opts)

  @doc """
  Makes `version` what `channel` serves. Options: `:reason`, `:force` (even when its last integration
  test failed), `:suite` (an integration suite file: promoted only when it passes; the result lists each
  failure otherwise).
  """
  @spec registry_promote(String.t(), String.t(), opts) :: result(map)
  def registry_promote(version, channel, opts \\ []) do
    params =
      compact(%{
        "version" => version,
        "channel" => channel,
        "reason" => opts[:reason],
        "force" => opts[:force],
        "suite" => opts[:suite]
      })

    call("registry.promote", params, opts)
  end

  @doc "Takes `channel` back to the version it served before (option `:reason`)."
  @spec registry_rollback(String.t(), opts) :: result(map)
  def registry_rollback(channel, opts \\ []),
    do: call("registry.rollback", compact(%{"channel" => channel, "reason" => opts[:reason]}), opts)

  @doc "The promotions and rollbacks of a channel."
  @spec registry_history(String.t(), opts) :: result([map])
  def registry_history(channel, opts \\ []), do: call("registry.history", %{"channel" => channel}, opts)

  @doc "Runs an integration suite (a YAML or JSON file in the workspace) against a version; the result is stored with it."
  @spec registry_test(String.t(), String.t(), opts) :: result(map)
  def registry_test(version, suite, opts \\ []),
    do: call("registry.test", %{"version" => version, "suite" => suite}, opts)

  @doc "The registry's audit log: `%{\"events\" => [...], \"next\" => index}` (options `:since`, `:limit`)."
  @spec registry_events(opts) :: result(map)
  def registry_events(opts \\ []),
    do: call("registry.events", compact(%{"since" => opts[:since], "limit" => opts[:limit]}), opts)

  @doc """
  Answers a conversation with a registered version: `%{"messages" => [...], "channel" => c}` (through the
  channel's A/B router and monitor; `"key"` keeps a user on one arm) or `%{"version" => v}`, and the
  sampling options `"maxNewTokens"`, `"temperature"` (0: greedy), `"topK"`, `"topP"`,
  `"repetitionPenalty"`, `"seed"`, `"stop"`. Result: `"text"`, `"version"`, `"requestId"`, timings.
  """
  @spec serve_generate(map, opts) :: result(map)
  def serve_generate(request, opts \\ []), do: call("serve.generate", request, opts)

  @doc "Sets a channel's A/B split: `%{\"candidate\" => version | nil, \"candidateShare\" => 0.1, \"salt\" => s}`."
  @spec ab_configure(String.t(), map, opts) :: result(map)
  def ab_configure(channel, settings, opts \\ []),
    do: call("ab.configure", Map.put(stringify(settings), "channel", channel), opts)

  @doc "A user's rating of a served answer (its `requestId`)."
  @spec ab_rate(String.t(), String.t(), number, opts) :: result(map)
  def ab_rate(channel, request_id, score, opts \\ []),
    do: call("ab.rate", %{"channel" => channel, "requestId" => request_id, "score" => score}, opts)

  @doc "The A/B comparison of a channel's control and candidate (latency, tokens/s, errors, ratings, tests)."
  @spec ab_report(String.t(), opts) :: result(map)
  def ab_report(channel, opts \\ []), do: call("ab.report", %{"channel" => channel}, opts)

  @doc "A channel's monitoring snapshot: counters, latency histograms, the drift window and its alarms."
  @spec monitor_snapshot(String.t(), opts) :: result(map)
  def monitor_snapshot(channel, opts \\ []), do: call("monitor.snapshot", %{"channel" => channel}, opts)

  @doc "Every channel's monitor as Prometheus text: `{:ok, %{\"text\" => text}}`."
  @spec monitor_exposition(opts) :: result(map)
  def monitor_exposition(opts \\ []), do: call("monitor.exposition", %{}, opts)

  @doc "Replaces a channel's drift alarm settings (thresholds, window, `autoRollback`)."
  @spec monitor_configure(String.t(), map, opts) :: result(map)
  def monitor_configure(channel, drift, opts \\ []),
    do: call("monitor.configure", Map.put(stringify(drift), "channel", channel), opts)

  @doc "Any method of the protocol by name (docs/PROTOCOL.md)."
  @spec call(String.t(), map, opts) :: result(term)
  def call(method, params \\ %{}, opts \\ []) do
    server = server(opts)

    case is_atom(server) and :persistent_term.get({__MODULE__, :direct, server}, nil) do
      # a named server: straight to its port (the reply still comes through the server)
      direct when is_tuple(direct) ->
        Server.direct_call(direct, method, stringify(params), opts[:timeout] || elem(direct, 5))

      _ ->
        timeout = opts[:timeout] || default_timeout(opts)
        safe_call(server, {:call, method, stringify(params), timeout}, timeout)
    end
  end

  # ------------------------------------------------------------------------------------------- helpers

  defp await_job(method, params, opts) do
    timeout = opts[:timeout] || default_timeout(opts)
    subscriber = if opts[:subscribe], do: self()
    safe_call(server(opts), {:job, method, stringify(params), timeout, :await, subscriber}, timeout)
  end

  defp start_job(method, params, opts) do
    timeout = opts[:timeout] || default_timeout(opts)
    safe_call(server(opts), {:job, method, stringify(params), timeout, :start, self()}, timeout)
  end

  defp safe_call(server, msg, timeout) do
    GenServer.call(server, msg, timeout + 5_000)
  catch
    :exit, {:timeout, _} -> {:error, :timeout}
    :exit, {reason, _} when reason in [:noproc, :normal, :shutdown] -> {:error, :sidecar_exited}
    :exit, {{:sidecar_exited, _}, _} -> {:error, :sidecar_exited}
    :exit, {{:shutdown, _}, _} -> {:error, :sidecar_exited}
    # a server on another node that went away (or was cut off)
    :exit, {{:nodedown, node}, _} -> {:error, {:nodedown, node}}
  end

  defp dataset_params(config, opts) do
    compact(%{
      "config" => config,
      "store" => opts[:store],
      "baseDir" => opts[:base_dir],
      "rejects" => opts[:rejects],
      "strict" => opts[:strict],
      "job" => opts[:job]
    })
  end

  # a job id chosen by the caller (`job:` option) unless the params name one
  defp with_job(params, opts) do
    params = stringify(params)
    if opts[:job] && not Map.has_key?(params, "job"), do: Map.put(params, "job", opts[:job]), else: params
  end

  defp server(opts), do: opts[:server] || __MODULE__

  defp default_timeout(opts), do: :persistent_term.get({__MODULE__, :timeout, server(opts)}, 30_000)

  defp compact(map), do: map |> Enum.reject(fn {_, v} -> is_nil(v) end) |> Map.new()

  defp stringify(map) when map_size(map) == 0, do: map
  defp stringify(map) when is_map(map), do: Map.new(map, fn {k, v} -> {to_string(k), v} end)
end
