/**
 * Bringing bottles up, against what users would use instead: Docker Compose
 * (Debian's docker-compose) bringing up equivalent projects (the same
 * images, two networks one of them internal, capabilities dropped, the
 * proxy's image running mitmdump), one after another and all at once, in the
 * same run; for N = 1 and N = 10. bottle's time includes what compose does
 * not do: waiting for each proxy to answer before its agent starts, and
 * proving each fence. Targets (N = 10): ≤ 0.5× compose one after another,
 * ≤ 0.9× compose all at once. Also: a no-op `apply` of 20 bottles ≤ 0.5 s.
 *
 * Each figure is the median of three rounds, each measured from a quiet
 * machine. The compose projects run mitmdump as it is, as a user would
 * write them; compose returns before their proxies answer, so their start
 * is counted only where it slows what comes after. Each run also prints the
 * machine's CPU time it used (all processes: the Engine, containerd, runc,
 * the containers starting, the tools), per bottle or project: on a machine
 * the work saturates, that is where the time goes.
 */
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import os, { tmpdir } from "node:os"
import { join } from "node:path"
import { AGENT_IMAGE, bottle, busyMs, EGRESS_IMAGE, ensureTestImages, env, median, ratio, scrub, settle, time } from "./support.js"

const spec = (names: ReadonlyArray<string>) =>
  names.map((n) => `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: ${n} }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 256m, pids: 256 }\n`).join("---\n")

/** A compose project equivalent to one bottle. */
const composeFile = `services:
  egress:
    image: ${EGRESS_IMAGE}
    entrypoint: ["mitmdump"]
    command: ["--quiet", "--listen-port", "8888", "--set", "confdir=/tmp/mitmproxy"]
    user: "65534:65534"
    read_only: true
    tmpfs: ["/tmp"]
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    networks:
      internal: { aliases: [egress] }
      egress: {}
  agent:
    image: ${AGENT_IMAGE}
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    mem_limit: 256m
    pids_limit: 256
    environment: { HTTPS_PROXY: "http://egress:8888" }
    networks: [internal]
    depends_on: [egress]
networks:
  internal: { internal: true }
  egress: {}
`

const compose = (dir: string, project: string, ...args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const p = spawn("docker-compose", ["-p", project, "-f", join(dir, "docker-compose.yml"), ...args], { stdio: ["ignore", "ignore", "pipe"] })
    let err = ""
    p.stderr.on("data", (d) => (err += d))
    p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`docker-compose ${args.join(" ")}: ${err}`))))
  })

interface Measured { readonly ms: number; readonly cpu: number }

/** Wall time and the machine's CPU time of `f`, in ms, started on a quiet machine. */
const measure = async (f: () => unknown): Promise<Measured> => {
  await settle()
  const [t, cpu] = [process.hrtime.bigint(), busyMs()]
  await f()
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, cpu: busyMs() - cpu }
}

export const benchApply = async () => {
  ensureTestImages()
  try {
    execFileSync("docker-compose", ["version"], { stdio: "ignore" })
  } catch {
    console.log("docker-compose is missing: apt-get install -y docker-compose (Debian's) to run this bench")
    return
  }
  const dir = mkdtempSync(join(tmpdir(), "bottle-bench-apply-"))
  writeFileSync(join(dir, "docker-compose.yml"), composeFile)
  // Three rounds, each of compose one after another, compose all at once and bottle, on a quiet machine; the
  // medians are compared (one run each moved the ratios by a tenth on this machine, whose speed drifts).
  const rounds = 3
  for (const n of [1, 10]) {
    const projects = Array.from({ length: n }, (_, i) => `bcmp${process.pid.toString(36)}n${n}p${i}`)
    const prefix = `bap${process.pid.toString(36)}n${n}`
    const e = env(prefix)
    const file = join(dir, `bottles-${n}.yaml`)
    writeFileSync(file, spec(Array.from({ length: n }, (_, i) => `a${i}`)))
    const runs: Array<{ seq: Measured; par: Measured; ours: Measured }> = []
    for (let r = 0; r < rounds; r++) {
      const seq = await measure(async () => { for (const p of projects) await compose(dir, p, "up", "-d") })
      await Promise.all(projects.map((p) => compose(dir, p, "down", "-t", "0")))
      const par = await measure(() => Promise.all(projects.map((p) => compose(dir, p, "up", "-d"))))
      await Promise.all(projects.map((p) => compose(dir, p, "down", "-t", "0")))
      const ours = await measure(() => bottle(e, "apply", "-f", file))
      bottle(e, "reconcile", "--prune", "--yes")
      scrub(prefix)
      runs.push({ seq, par, ours })
    }
    const mid = (k: "seq" | "par" | "ours", f: "ms" | "cpu") => median(runs.map((x) => x[k][f]))
    const [seq, par, ours] = [mid("seq", "ms"), mid("par", "ms"), mid("ours", "ms")]
    const perUnit = (cpu: number) => `${(cpu / n / 1000).toFixed(2)} s`
    const each = (k: "seq" | "par" | "ours") => runs.map((x) => x[k].ms.toFixed(0)).join(", ")
    console.log(`N=${n}, medians of ${rounds} rounds: compose one after another ${seq.toFixed(0)} ms (${each("seq")}), all at once ${par.toFixed(0)} ms (${each("par")}); bottle apply (proxies answering, fences proven) ${ours.toFixed(0)} ms (${each("ours")})`)
    console.log(`  machine CPU per project/bottle: compose one after another ${perUnit(mid("seq", "cpu"))}, all at once ${perUnit(mid("par", "cpu"))}; bottle ${perUnit(mid("ours", "cpu"))} (${os.cpus().length} CPUs)`)
    console.log(`  ratio to one after another: ${ratio(ours, seq)}${n === 10 ? `   (target ≤ 0.50) ${ours / seq <= 0.5 ? "MET" : "NOT MET"}` : ""}`)
    console.log(`  ratio to all at once:       ${ratio(ours, par)}${n === 10 ? `   (target ≤ 0.90) ${ours / par <= 0.9 ? "MET" : "NOT MET"}` : ""}`)
  }

  // A no-op apply of 20 bottles: what a user waits for when nothing is to be done.
  const prefix = `bnoop${process.pid.toString(36)}`
  const e = env(prefix)
  const file = join(dir, "noop.yaml")
  writeFileSync(file, spec(Array.from({ length: 20 }, (_, i) => `n${i}`)))
  try {
    bottle({ ...e, BOTTLE_LOCK_WAIT: "600" }, "apply", "-f", file)
    // Measured once the twenty proxies have come up and the Engine is done with what the last step left it.
    await settle()
    const runs = Array.from({ length: 9 }, () => time(() => bottle(e, "apply", "-f", file)))
    const noop = median(runs)
    const nodeFloor = median(Array.from({ length: 9 }, () => time(() => execFileSync(process.execPath, ["-e", "0"]))))
    console.log(`no-op apply of 20 bottles: ${noop.toFixed(0)} ms, median of 9 (node -e 0: ${nodeFloor.toFixed(0)} ms; the runs ${runs.map((r) => r.toFixed(0)).join(", ")})   (target ≤ 500 ms) ${noop <= 500 ? "MET" : "NOT MET"}`)
  } finally {
    bottle(e, "reconcile", "--prune", "--yes")
    scrub(prefix)
  }
}
