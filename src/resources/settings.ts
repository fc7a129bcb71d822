/** Host-wide settings from the environment, checked once at start. */
import { realpathSync } from "node:fs"
import { availableParallelism, homedir, totalmem } from "node:os"
import { basename, dirname, isAbsolute, join, resolve } from "node:path"
import * as Data from "effect/Data"
import { parseDockerHost, type Endpoint } from "../observers/endpoint.js"
import { KNOWN_ENGINE_SOCKETS, systemPathProblem } from "./hostPaths.js"
import type { LoadContext } from "./loadSpecs.js"
import { DEFAULT_PREFIX, LEGACY_PREFIXES, makeNames, type Names } from "./names.js"
import { DEFAULT_MITMPROXY_IMAGE } from "./proxyImages.js"
import { secretKey } from "./secrets.js"
import { DEFAULT_SUBNET_POOL, NETWORK_PREFIX, parseCidr, type Cidr } from "./subnets.js"

export interface Settings {
  readonly names: Names
  /** BOTTLE_HOME, default ~/.claude-bottle. */
  readonly home: string
  /** `<home>/state` with every symlink resolved, once: every removal is confined to it. */
  readonly stateRoot: string
  /** What spec loading checks host paths and sizes against. */
  readonly host: LoadContext
  readonly docker: Endpoint
  readonly egressImage: string | undefined
  /** The image probes run in when a bottle's own proxy image has no python3 (pipelock, or no proxy). */
  readonly probeImage: string
  /** `uid:gid` the mitmproxy proxy runs as: the user running bottle, who owns what it reads. */
  readonly proxyUser: string
  /** Seconds a proxy may take to answer once started. */
  readonly readySeconds: number
  /** Where bottle's networks get their subnets (BOTTLE_SUBNETS); undefined (`engine`): the Engine's own pools. */
  readonly subnetPool: ReadonlyArray<Cidr> | undefined
  readonly smolvmBinary: string
  /** Seconds a command waits for another bottle's lock before giving up. */
  readonly lockWaitSeconds: number
  readonly dockerTimeoutSeconds: number
  readonly smolvmTimeoutSeconds: number
  /** Seconds each Kubernetes API call may take (BOTTLE_KUBE_TIMEOUT). */
  readonly kubeTimeoutSeconds: number
}

/** A bad environment variable; nothing was changed. Exit code 2. */
export class EnvError extends Data.TaggedError("EnvError")<{ readonly variable: string; readonly detail: string }> {
  override get message(): string {
    return `environment: ${this.variable}: ${this.detail}`
  }
}

const PREFIX_PATTERN = /^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$/

/** Seconds from the environment; `zeroAllowed` for waits, where 0 means "do not wait" (a bound of 0 would fail everything). */
const seconds = (env: NodeJS.ProcessEnv, name: string, fallback: number, zeroAllowed = false): number => {
  const v = env[name]
  if (v === undefined || v === "") return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroAllowed) || n > 86_400) {
    throw new EnvError({ variable: name, detail: `expected a number of seconds${zeroAllowed ? "" : " above 0"} (at most 86400), got '${v}'` })
  }
  return n
}

/** A path with every symlink of its existing part resolved (the rest may not exist yet). */
const resolveExisting = (path: string): string => {
  try {
    return realpathSync(path)
  } catch {
    const parent = dirname(path)
    return parent === path ? path : join(resolveExisting(parent), basename(path))
  }
}

/** Places a state root must never be: every removal happens under it. */
const stateRootProblem = (root: string, userHome: string): string | undefined => {
  if (root === userHome) return `resolves to your home directory (${root})`
  const why = systemPathProblem(root)
  return why !== undefined ? `resolves to ${root}, which ${why}` : undefined
}

/** Reads and checks the environment. Throws EnvError (callers turn it into exit 2). */
/**
 * Where this install's recipes (images/) and supervisor server
 * (dist/sidecars/supervise.cjs) are: beside the bundle that runs, found from
 * the command's own path. Unknown when bottle does not run from its bundle.
 */
const installed = (): { recipes: string | undefined; superviseServer: string | undefined } => {
  const bin = process.argv[1]
  if (bin === undefined) return { recipes: undefined, superviseServer: undefined }
  let dist: string
  try {
    dist = dirname(realpathSync(bin))
  } catch {
    return { recipes: undefined, superviseServer: undefined }
  }
  return { recipes: resolve(dist, "..", "images"), superviseServer: resolve(dist, "sidecars", "supervise.cjs") }
}

export const readSettings = (env: NodeJS.ProcessEnv = process.env): Settings => {
  const prefix = env["BOTTLE_PREFIX"] || DEFAULT_PREFIX
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new EnvError({ variable: "BOTTLE_PREFIX", detail: `'${prefix}' must be lowercase letters, digits and '-', 2 to 40 characters` })
  }
  const legacyRaw = env["BOTTLE_LEGACY_PREFIXES"]
  const legacy = legacyRaw === undefined ? LEGACY_PREFIXES : legacyRaw.split(",").map((x) => x.trim()).filter((x) => x !== "")
  const badLegacy = legacy.find((x) => !PREFIX_PATTERN.test(x))
  if (badLegacy !== undefined) throw new EnvError({ variable: "BOTTLE_LEGACY_PREFIXES", detail: `'${badLegacy}' must be a prefix: lowercase letters, digits and '-'` })
  const userHome = resolve(env["HOME"] || homedir())
  const homeRaw = env["BOTTLE_HOME"] || `${userHome}/.claude-bottle`
  if (!isAbsolute(homeRaw)) throw new EnvError({ variable: "BOTTLE_HOME", detail: `'${homeRaw}' must be an absolute path` })
  const home = resolve(homeRaw)
  const stateRoot = resolveExisting(`${home}/state`)
  const badRoot = stateRootProblem(stateRoot, resolveExisting(userHome))
  if (badRoot !== undefined) {
    throw new EnvError({ variable: "BOTTLE_HOME", detail: `its state directory ${home}/state ${badRoot}: bottle removes state dirs under it, so it must be a directory of its own` })
  }
  const docker = parseDockerHost(env["DOCKER_HOST"])
  if (typeof docker === "string") throw new EnvError({ variable: "DOCKER_HOST", detail: docker })
  const local = docker.socketPath !== undefined
  const subnetsRaw = env["BOTTLE_SUBNETS"] || DEFAULT_SUBNET_POOL
  let subnetPool: Array<Cidr> | undefined
  if (subnetsRaw !== "engine") {
    subnetPool = []
    for (const part of subnetsRaw.split(",")) {
      const c = parseCidr(part)
      if (typeof c === "string") throw new EnvError({ variable: "BOTTLE_SUBNETS", detail: `${c}; or 'engine' to let the Engine's pools decide` })
      if (c.bits > NETWORK_PREFIX) throw new EnvError({ variable: "BOTTLE_SUBNETS", detail: `'${part}' is smaller than one network (a /${NETWORK_PREFIX})` })
      subnetPool.push(c)
    }
  }
  return {
    names: makeNames(prefix, legacy),
    home,
    stateRoot,
    host: {
      home: resolveExisting(userHome),
      bottleHome: resolveExisting(home),
      engineSockets: [...new Set([...(docker.socketPath !== undefined ? [resolveExisting(docker.socketPath)] : []), ...KNOWN_ENGINE_SOCKETS])],
      memoryBytes: local ? totalmem() : undefined,
      cpus: local ? availableParallelism() : undefined,
      env,
      secretKey: () => secretKey(home),
      prefix,
      sidecarImages: { git: env["BOTTLE_GIT_IMAGE"] || undefined, supervise: env["BOTTLE_SUPERVISE_IMAGE"] || undefined },
      ...installed()
    },
    docker,
    egressImage: env["BOTTLE_EGRESS_IMAGE"] || undefined,
    probeImage: env["BOTTLE_PROBE_IMAGE"] || DEFAULT_MITMPROXY_IMAGE,
    proxyUser: `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
    readySeconds: seconds(env, "BOTTLE_READY_TIMEOUT", 60),
    subnetPool,
    smolvmBinary: env["BOTTLE_SMOLVM"] || "smolvm",
    lockWaitSeconds: seconds(env, "BOTTLE_LOCK_WAIT", 10, true),
    dockerTimeoutSeconds: seconds(env, "BOTTLE_DOCKER_TIMEOUT", 30),
    smolvmTimeoutSeconds: seconds(env, "BOTTLE_SMOLVM_TIMEOUT", 30),
    kubeTimeoutSeconds: seconds(env, "BOTTLE_KUBE_TIMEOUT", 30)
  }
}
