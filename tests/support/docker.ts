/**
 * Support for tests against the real Docker Engine: finding it (skipping
 * loudly, or failing under CI=true), making test images locally with
 * `docker import` (no registry is reachable), and running the built CLI.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join, resolve } from "node:path"

export const ROOT = resolve(import.meta.dirname, "../..")
export const BIN = join(ROOT, "dist", "bottle.cjs")
export const AGENT_IMAGE = "bottle-local/agent:latest"
/** The real mitmproxy (Debian's), made by scripts/debian-images.sh: the egress proxy and the image probes run in. */
export const EGRESS_IMAGE = "bottle-local/mitmproxy:latest"

export const docker = (...args: ReadonlyArray<string>): string =>
  execFileSync("docker", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim()

export const dockerOk = (...args: ReadonlyArray<string>): boolean =>
  spawnSync("docker", args, { stdio: "ignore" }).status === 0

/** True when an Engine answers. Under CI=true a missing engine throws instead: CI must not skip. */
export const engineAvailable = (): boolean => {
  const up = spawnSync("docker", ["version", "--format", "{{.Server.Version}}"], { encoding: "utf8" }).status === 0
  if (!up) {
    const msg = "\n!!! NO DOCKER ENGINE: the integration tests against the real engine are SKIPPED. Start dockerd (see .ci/ensure-docker.sh). !!!\n"
    if (process.env["CI"] === "true") throw new Error(`${msg}Under CI=true this is a failure.`)
    process.stderr.write(msg)
  }
  return up
}

/** Makes the local agent image (scripts/local-images.sh) and the mitmproxy image (scripts/debian-images.sh) if they are missing. */
export const ensureTestImages = () => {
  execFileSync("bash", [join(ROOT, "scripts", "local-images.sh")], { stdio: ["ignore", "ignore", "inherit"] })
  execFileSync("bash", [join(ROOT, "scripts", "debian-images.sh"), "--only", "mitmproxy"], { stdio: ["ignore", "ignore", "inherit"] })
}

/** What every run of the CLI in these tests gets: no colour, and probes in the local mitmproxy image (no registry here). */
const TEST_ENV = { NO_COLOR: "1", BOTTLE_PROBE_IMAGE: EGRESS_IMAGE }

export interface RunResult {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs the built CLI as a user would, with no terminal. */
export const bottle = (env: NodeJS.ProcessEnv, ...args: ReadonlyArray<string>): RunResult => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build`)
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...TEST_ENV, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 })
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** Every container, network and volume whose name starts with the prefix. */
export const leftovers = (prefix: string): ReadonlyArray<string> => {
  const lines = (s: string) => s.split("\n").filter((l) => l.startsWith(prefix))
  return [
    ...lines(docker("ps", "-a", "--format", "{{.Names}}")).map((n) => `container ${n}`),
    ...lines(docker("network", "ls", "--format", "{{.Name}}")).map((n) => `network ${n}`),
    ...lines(docker("volume", "ls", "--format", "{{.Name}}")).map((n) => `volume ${n}`)
  ]
}

/** Removes everything with the prefix, whatever bottle did: test teardown only. */
export const scrub = (prefix: string) => {
  for (const l of leftovers(prefix)) {
    const [kind, name] = l.split(" ") as [string, string]
    if (kind === "container") dockerOk("rm", "-f", name)
  }
  for (const l of leftovers(prefix)) {
    const [kind, name] = l.split(" ") as [string, string]
    if (kind === "network") dockerOk("network", "rm", name)
    if (kind === "volume") dockerOk("volume", "rm", "-f", name)
  }
}

export const containerId = (name: string) => docker("inspect", "--format", "{{.Id}}", name)
export const uniquePrefix = (tag: string) => `bt${tag}${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`

/** Runs the built CLI without blocking this process (needed when the test serves something, like a fault proxy). */
export const bottleAsync = (env: NodeJS.ProcessEnv, ...args: ReadonlyArray<string>): Promise<RunResult> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...TEST_ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("close", (code, signal) => resolve({ status: code ?? (signal ? -1 : 0), stdout, stderr }))
  })

/**
 * An HTTP GET from inside a container with busybox nc (direct, ignoring proxy
 * variables; busybox's static wget crashes on some hosts). Returns the whole
 * response, or "" when nothing answered.
 */
export const httpGet = (container: string, host: string, port: number, path = "/"): string => {
  // stdin stays open a moment: a proxy (mitmproxy) drops a request whose client half-closes before the answer.
  const r = spawnSync("docker", ["exec", container, "sh", "-c", `(printf 'GET ${path} HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n'; sleep 1) | nc -w 3 ${host} ${port}`], { encoding: "utf8" })
  return r.stdout ?? ""
}

/** The body of an HTTP response. */
export const bodyOf = (response: string) => response.split(/\r?\n\r?\n/).slice(1).join("\n\n").trim()
