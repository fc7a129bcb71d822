/**
 * `bottle exec NAME [--service agent|egress|git|supervise] [-i] [-t] [-e K=V] [-w DIR] -- CMD…`:
 * runs a command in a bottle (its agent, or a sidecar) with stdin, a TTY
 * with its resizes when asked, and the command's exit code as bottle's own.
 * Engine API exec on docker; `smolvm machine exec` for a machine; the
 * API's pod exec on Kubernetes.
 */
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import { execAttached } from "../observers/DockerStreams.js"
import { kubeExec } from "../observers/KubeStreams.js"
import { Smolvm } from "../observers/Smolvm.js"
import { exitWith } from "./exit.js"
import { observeEverywhere, runningPod } from "./kube.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err } from "./output.js"
import { SettingsTag } from "./settings.js"
import { findTarget } from "./target.js"

export const exec = (o: O.Parsed<typeof O.exec>) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const { observed, access } = yield* observeEverywhere(settings, o.context)
    const t = findTarget(observed, settings.names, o.bottle, o.service)
    if (t._tag === "Missing") {
      err(`error: ${t.why}`)
      return yield* Effect.fail(exitWith(2))
    }
    if (!t.running) {
      err(`error: ${t._tag === "Machine" ? "machine" : "container"} ${t.name} of bottle '${o.bottle}' is not running (bottle apply starts it)`)
      return yield* Effect.fail(exitWith(2))
    }
    const envList = Option.match(o.env, { onNone: () => [], onSome: (m) => [...HashMap.entries(m)].map(([k, v]) => `${k}=${v}`) })
    const wd = Option.getOrUndefined(o.workdir)
    // A terminal is only asked for when there is one to give it.
    const useTty = o.tty && Boolean(process.stdin.isTTY)
    if (o.tty && !useTty) err("warning: -t needs a terminal on stdin; running without one")
    const failed = (e: { readonly message: string } | string) => Effect.sync(() => { err(`error: ${typeof e === "string" ? e : e.message}`) }).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
    /** The caller's terminal, attached as it is (raw while a TTY is used). */
    const io = {
      stdin: o.interactive ? process.stdin : undefined,
      stdout: process.stdout,
      stderr: process.stderr,
      size: () => ({ rows: process.stdout.rows ?? 24, columns: process.stdout.columns ?? 80 }),
      onResize: (listener: () => void) => {
        process.stdout.on("resize", listener)
        return () => { process.stdout.off("resize", listener) }
      }
    }
    const attached = <E>(run: Effect.Effect<number, E>) => {
      const raw = useTty && process.stdin.isTTY ? process.stdin : undefined
      return Effect.sync(() => raw?.setRawMode(true)).pipe(Effect.zipRight(run), Effect.ensuring(Effect.sync(() => raw?.setRawMode(false))))
    }
    let code: number
    if (t._tag === "Pod") {
      if (envList.length > 0 || wd !== undefined) return yield* failed("on Kubernetes the API's exec runs the command as the pod has it: no -e or -w (wrap it: sh -c 'cd DIR && K=V cmd')")
      if (access._tag !== "Ready") return yield* failed("no Kubernetes cluster is configured")
      const pod = yield* runningPod(access, t.namespace, t.bottle, t.role).pipe(Effect.catchAll(failed))
      code = yield* attached(kubeExec(access.target, { namespace: t.namespace, name: pod, container: t.role }, { command: o.command, interactive: o.interactive, tty: useTty }, io)).pipe(Effect.catchAll(failed))
    } else if (t._tag === "Machine") {
      const smolvm = yield* Smolvm
      code = yield* smolvm.exec(t.name, o.command, { interactive: o.interactive, tty: useTty, env: envList, workdir: wd }).pipe(Effect.catchAll(failed))
    } else {
      code = yield* attached(execAttached(settings.docker, t.name, { cmd: o.command, env: envList, ...(wd !== undefined ? { workdir: wd } : {}), tty: useTty, interactive: o.interactive }, io, settings.dockerTimeoutSeconds * 1000)).pipe(Effect.catchAll(failed))
    }
    if (code !== 0) return yield* Effect.fail(exitWith(code))
  }).pipe(withEngines)
