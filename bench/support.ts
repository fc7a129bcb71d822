/** Shared pieces of the benchmarks: timing, the CLI, and making leftovers fast. */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AGENT_IMAGE, BIN, docker, EGRESS_IMAGE, ensureTestImages, scrub } from "../tests/support/docker.js"

export { AGENT_IMAGE, BIN, docker, EGRESS_IMAGE, ensureTestImages, scrub }

export const time = (f: () => void): number => {
  const t = process.hrtime.bigint()
  f()
  return Number(process.hrtime.bigint() - t) / 1e6
}

export const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export const env = (prefix: string) => ({
  ...process.env,
  NO_COLOR: "1",
  BOTTLE_PREFIX: prefix,
  BOTTLE_HOME: mkdtempSync(join(tmpdir(), "bottle-bench-")),
  BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE,
  BOTTLE_PROBE_IMAGE: EGRESS_IMAGE,
  BOTTLE_SMOLVM: "/nonexistent/smolvm",
  // The leftovers benches seed are the older tool's (no labels of bottle's): this host plays one it used.
  BOTTLE_LEGACY_PREFIXES: prefix
})

export const bottle = (e: NodeJS.ProcessEnv, ...args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: e, encoding: "utf8" })
  if (r.status !== 0) throw new Error(`bottle ${args.join(" ")} exited ${r.status}: ${r.stdout}${r.stderr}`)
  return r.stdout
}

/** Starts `n` containers at once (one `docker run` each, in parallel batches). */
export const runContainers = (names: ReadonlyArray<string>, labels: (name: string) => Record<string, string> = () => ({})) => {
  const batch = 10
  for (let i = 0; i < names.length; i += batch) {
    const script = names.slice(i, i + batch).map((n) =>
      `docker run -d --name ${n} ${Object.entries(labels(n)).map(([k, v]) => `--label ${k}=${v}`).join(" ")} ${AGENT_IMAGE} >/dev/null &`).join("\n")
    execFileSync("bash", ["-c", `${script}\nwait`])
  }
}

export const ratio = (a: number, b: number) => (a / b).toFixed(2)

/** The machine's busy CPU time so far, in ms (every CPU, every process), from /proc/stat; 0 where there is none. */
export const busyMs = (): number => {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, , , irq, softirq, steal] = f
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 10
  } catch {
    return 0
  }
}

/**
 * Waits until the machine is quiet (under a tenth of one CPU busy over half a second), for at most 15 s: what a
 * step left running (proxies coming up, the Engine removing containers) is not counted in the next one's time.
 */
export const settle = async (): Promise<void> => {
  const until = Date.now() + 15_000
  while (Date.now() < until) {
    const before = busyMs()
    await new Promise((r) => setTimeout(r, 500))
    if (busyMs() - before < 50) return
  }
}
