/** Host-wide settings from the environment, checked once at start. */
import { homedir } from "node:os"
import { isAbsolute, resolve } from "node:path"
import { Data } from "effect"
import { parseDockerHost, type Endpoint } from "../observers/DockerEngine.js"
import { DEFAULT_PREFIX, makeNames, type Names } from "./names.js"

export interface Settings {
  readonly names: Names
  /** BOTTLE_HOME, default ~/.claude-bottle. */
  readonly home: string
  readonly stateRoot: string
  readonly docker: Endpoint
  readonly egressImage: string | undefined
  readonly smolvmBinary: string
  /** Seconds a command waits for another bottle's lock before giving up. */
  readonly lockWaitSeconds: number
  readonly dockerTimeoutSeconds: number
  readonly smolvmTimeoutSeconds: number
}

/** A bad environment variable; nothing was changed. Exit code 2. */
export class EnvError extends Data.TaggedError("EnvError")<{ readonly variable: string; readonly detail: string }> {
  override get message(): string {
    return `environment: ${this.variable}: ${this.detail}`
  }
}

const PREFIX_PATTERN = /^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$/

const seconds = (env: NodeJS.ProcessEnv, name: string, fallback: number): number => {
  const v = env[name]
  if (v === undefined || v === "") return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new EnvError({ variable: name, detail: `expected a number of seconds, got '${v}'` })
  return n
}

/** Reads and checks the environment. Throws EnvError (callers turn it into exit 2). */
export const readSettings = (env: NodeJS.ProcessEnv = process.env): Settings => {
  const prefix = env["BOTTLE_PREFIX"] || DEFAULT_PREFIX
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new EnvError({ variable: "BOTTLE_PREFIX", detail: `'${prefix}' must be lowercase letters, digits and '-', 2 to 40 characters` })
  }
  const homeRaw = env["BOTTLE_HOME"] || `${env["HOME"] || homedir()}/.claude-bottle`
  if (!isAbsolute(homeRaw)) throw new EnvError({ variable: "BOTTLE_HOME", detail: `'${homeRaw}' must be an absolute path` })
  const home = resolve(homeRaw)
  const docker = parseDockerHost(env["DOCKER_HOST"])
  if (typeof docker === "string") throw new EnvError({ variable: "DOCKER_HOST", detail: docker })
  return {
    names: makeNames(prefix),
    home,
    stateRoot: `${home}/state`,
    docker,
    egressImage: env["BOTTLE_EGRESS_IMAGE"] || undefined,
    smolvmBinary: env["BOTTLE_SMOLVM"] || "smolvm",
    lockWaitSeconds: seconds(env, "BOTTLE_LOCK_WAIT", 10),
    dockerTimeoutSeconds: seconds(env, "BOTTLE_DOCKER_TIMEOUT", 30),
    smolvmTimeoutSeconds: seconds(env, "BOTTLE_SMOLVM_TIMEOUT", 30)
  }
}
