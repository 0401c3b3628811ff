# The suite runs against the real sidecar: dist/src/port/main.js must be built (npm run build:ts).
script = Path.expand("../../dist/src/port/main.js", __DIR__)

unless File.regular?(script) do
  IO.puts(
    :stderr,
    "the sidecar is not built: run `npm run build:ts` in the repository root first (#{script})"
  )

  System.halt(1)
end

Code.require_file("support/json.ex", __DIR__)
Code.require_file("support/fixtures.ex", __DIR__)
ExUnit.start(capture_log: true)
