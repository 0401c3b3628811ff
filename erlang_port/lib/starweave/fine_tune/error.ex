defmodule Starweave.FineTune.Error do
  @moduledoc """
  An error reply of the sidecar: `code` (an atom for the protocol's codes, see docs/PROTOCOL.md; a
  string for a code this client does not know), `message` for a person, `details` (field path, file,
  issue number, ...). Match on the code:

      case Starweave.FineTune.dataset_validate(config) do
        {:ok, result} -> result
        {:error, %Starweave.FineTune.Error{code: :invalid_params, details: %{"path" => path}}} -> ...
        {:error, :timeout} -> ...
      end
  """
  defexception [:code, :message, details: %{}]

  @type code ::
          :malformed_frame
          | :frame_too_large
          | :invalid_request
          | :unknown_method
          | :invalid_params
          | :not_implemented
          | :path_outside_workspace
          | :not_found
          | :data_error
          | :strict_mode
          | :model_error
          | :training_error
          | :export_error
          | :registry_error
          | :serving_error
          | :job_not_found
          | :cancelled
          | :busy
          | :shutting_down
          | :internal
          | String.t()
  @type t :: %__MODULE__{code: code, message: String.t(), details: map}

  @codes ~w(malformed_frame frame_too_large invalid_request unknown_method invalid_params not_implemented
            path_outside_workspace not_found data_error strict_mode model_error training_error export_error registry_error serving_error job_not_found cancelled busy
            shutting_down internal)
  @by_name Map.new(@codes, &{&1, String.to_atom(&1)})

  @doc false
  @spec from_wire(term) :: t
  def from_wire(%{"code" => code, "message" => message} = e) do
    %__MODULE__{code: Map.get(@by_name, code, code), message: message, details: Map.get(e, "details") || %{}}
  end

  def from_wire(other), do: %__MODULE__{code: :internal, message: "malformed error reply: #{inspect(other)}"}
end
