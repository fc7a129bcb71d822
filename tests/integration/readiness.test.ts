/**
 * A proxy's readiness, as the runner hears it on the real Engine (the rule:
 * what a proxy fences never starts before the proxy answers). The ready line
 * counts only from the proxy's current start: one an earlier start wrote is
 * not this one's, though the Engine may stamp it after that start ended; what
 * a start says before the Engine records it is this one's. A proxy left
 * running by an earlier run whose line is no longer in its log (a logging
 * driver that trims it) is asked from inside instead of being waited out.
 */
import { NodeContext } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { layer } from "../../src/observers/DockerEngine.js"
import { parseDockerHost, type Endpoint } from "../../src/observers/endpoint.js"
import { Smolvm } from "../../src/observers/Smolvm.js"
import { Action } from "../../src/reconcilers/actions.js"
import { makeRunner } from "../../src/reconcilers/runAction.js"
import { makeNames } from "../../src/resources/names.js"
import { readyCheck, type ContainerSpec } from "../../src/resources/realise.js"
import { AGENT_IMAGE, docker, dockerOk, EGRESS_IMAGE, engineAvailable, ensureTestImages, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()

describe.skipIf(!available)("a proxy's readiness, heard by the runner", () => {
  const prefix = uniquePrefix("ready")
  const endpoint = parseDockerHost(process.env["DOCKER_HOST"]) as Endpoint
  const ready = readyCheck("mitmproxy")
  const run = (action: Action, readySeconds = 4) =>
    Effect.gen(function* () {
      const runAction = yield* makeRunner({ log: () => undefined, names: makeNames(prefix), probeImage: EGRESS_IMAGE, localEngine: true, readySeconds, endpoint })
      return yield* Effect.either(runAction(action))
    }).pipe(
      Effect.provide(Layer.mergeAll(layer({ endpoint, timeout: "30 seconds", pullTimeout: "30 seconds" }), Layer.succeed(Smolvm, {} as never), NodeContext.layer)),
      Effect.scoped,
      Effect.runPromise
    )
  const spec = (name: string): ContainerSpec => ({ bottle: "r", name, service: "egress", image: EGRESS_IMAGE, hash: "h", fields: "", body: { Image: EGRESS_IMAGE, HostConfig: {} }, connect: [], ready })
  const start = (name: string) => Action.StartContainer({ id: name, bottle: "r", resource: name, cause: "test", after: [], created: false, spec: spec(name) })

  beforeAll(() => ensureTestImages())
  afterAll(() => {
    for (const n of ["twice", "trimmed", "fenced", "stale", "fresh", "again", "quick0", "quick1", "quick2", "quick3", "quick4", "quick5"]) dockerOk("rm", "-f", `${prefix}-${n}`)
    for (const v of ["once", "stale", "fresh", "again"]) dockerOk("volume", "rm", `${prefix}-${v}`)
  })

  it("a proxy started anew is not taken as ready by the line an earlier start wrote", async () => {
    // Its first start says it is ready; every later one says nothing and answers nothing.
    const name = `${prefix}-twice`
    docker("create", "--name", name, "-v", `${prefix}-once:/data`, "--entrypoint", "sh", AGENT_IMAGE, "-c",
      `if [ -e /data/once ]; then sleep 600; else touch /data/once; echo '{"event": "ready"}'; sleep 600; fi`)
    const first = await run(start(name))
    expect(Either.isRight(first), JSON.stringify(first)).toBe(true)
    docker("stop", "-t", "0", name)
    expect(docker("logs", name)).toContain('"event": "ready"')
    const again = await run(start(name))
    expect(Either.isLeft(again)).toBe(true)
    expect(Either.isLeft(again) && again.left.message).toMatch(/no 'ready' line in its log within 4s/)
  }, 60_000)

  it("a proxy that says why and stops at once is heard, though its words come before the Engine records its start", async () => {
    // Such a process's lines are stamped before the StartedAt the Engine records after it runs.
    for (let i = 0; i < 6; i++) {
      const name = `${prefix}-quick${i}`
      docker("create", "--name", name, "--entrypoint", "sh", AGENT_IMAGE, "-c", `echo 'cannot start: port in use'; exit 3`)
      const r = await run(start(name))
      expect(Either.isLeft(r) && r.left.message).toMatch(/stopped before it answered on port \d+ \(cannot start: port in use\)/)
    }
  }, 90_000)

  /** A container whose first run (started here, not by the runner) does `first` and ends; every later one does `later`. */
  const ranOnce = (name: string, first: string, later: string) => {
    docker("create", "--name", `${prefix}-${name}`, "-v", `${prefix}-${name}:/data`, "--entrypoint", "sh", AGENT_IMAGE, "-c",
      `if [ -e /data/ran ]; then ${later}; else touch /data/ran; ${first}; fi`)
    docker("start", "-a", `${prefix}-${name}`)
    return `${prefix}-${name}`
  }

  it("a ready line the addon wrote before the proxy's last run ended is not this run's, whenever the Engine stamped it", async () => {
    // As a line of the last run that the Engine read (and stamped) after that run had ended.
    const stale = ranOnce("stale", "true", `echo '{"time": "2020-01-01T00:00:00.000Z", "bottle": "r", "event": "ready"}'; sleep 600`)
    const r = await run(start(stale))
    expect(Either.isLeft(r) && r.left.message).toMatch(/no 'ready' line in its log within 4s/)
    // The same line with a time of this run is.
    const fresh = ranOnce("fresh", "true", `sleep 1.1; echo "{\\"time\\": \\"$(date -u +%Y-%m-%dT%H:%M:%S).000Z\\", \\"event\\": \\"ready\\"}"; sleep 600`)
    const f = await run(start(fresh))
    expect(Either.isRight(f), JSON.stringify(f)).toBe(true)
  }, 60_000)

  it("a proxy that ran before and stops at once is heard in what this run said", async () => {
    const again = ranOnce("again", "echo 'first run: fine'", `echo 'cannot start: port in use'; exit 3`)
    const r = await run(start(again))
    expect(Either.isLeft(r) && r.left.message).toMatch(/stopped before it answered on port \d+ \(.*cannot start: port in use\)/)
  }, 60_000)

  it("a proxy left running whose line is no longer in its log is asked from inside, not waited out", async () => {
    // Answers HTTP on the proxy's port, and never prints the line (as one whose log was trimmed).
    const proxy = `${prefix}-trimmed`
    docker("run", "-d", "--name", proxy, "--entrypoint", "python3", EGRESS_IMAGE, "-m", "http.server", "--bind", "127.0.0.1", String(ready.port))
    const fenced = `${prefix}-fenced`
    docker("create", "--name", fenced, AGENT_IMAGE)
    const started = Date.now()
    const r = await run(Action.StartContainer({ id: fenced, bottle: "r", resource: fenced, cause: "test", after: [], created: true, spec: { ...spec(fenced), ready: undefined }, awaitReady: { target: proxy, ready } }), 30)
    expect(Either.isRight(r), JSON.stringify(r)).toBe(true)
    // Well inside the 30 s a wait for the line would have taken before failing.
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(docker("inspect", "--format", "{{.State.Running}}", fenced)).toBe("true")
  }, 60_000)
})
