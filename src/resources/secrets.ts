/**
 * Secrets: where their values come from, and the keyed hash that stands for
 * a value wherever bottle must tell one value from another (spec hashes,
 * labels) without showing it. The key is random, made once per BOTTLE_HOME,
 * readable by its owner only: without it, a hash tells nothing about a value,
 * short or guessable as it may be.
 */
import { createHmac, randomBytes } from "node:crypto"
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { readBoundedFile, resolveFrom } from "./hostPaths.js"

/** The most of a secret file bottle reads: keys and tokens are small. */
export const MAX_SECRET_BYTES = 64 * 1024

const KEY_FILE = "secrets.key"

/** The install's hashing key, made on first use. */
export const secretKey = (bottleHome: string): Buffer => {
  const path = join(bottleHome, KEY_FILE)
  try {
    return readFileSync(path)
  } catch {
    mkdirSync(bottleHome, { recursive: true, mode: 0o700 })
    try {
      // Exclusive create: two commands making it at once end up with one key.
      const fd = openSync(path, "wx", 0o600)
      writeSync(fd, randomBytes(32))
      closeSync(fd)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
    chmodSync(path, 0o600)
    return readFileSync(path)
  }
}

export const digestOf = (key: Buffer, value: string): string => createHmac("sha256", key).update(value).digest("hex")

/**
 * The value of `env:VAR` or `file:PATH`, or what is wrong (naming the source,
 * never a value). A file's trailing newline is dropped.
 */
export const readSecret = (from: string, specFile: string, env: NodeJS.ProcessEnv): Effect.Effect<Either.Either<string, string>> => {
  if (from.startsWith("env:")) {
    const v = env[from.slice(4)]
    return Effect.succeed(v === undefined || v === "" ? Either.left(`environment variable ${from.slice(4)} is not set`) : Either.right(v))
  }
  const raw = from.slice(5)
  const path = raw === "~" || raw.startsWith("~/") ? join(env["HOME"] || homedir(), raw.slice(1)) : resolveFrom(specFile, raw)
  return readBoundedFile(path, MAX_SECRET_BYTES).pipe(
    Effect.map((b) => {
      const v = b.toString("utf8").replace(/\r?\n$/, "")
      return v === "" ? Either.left(`file ${path} is empty`) : Either.right(v)
    }),
    Effect.catchAll((e) => Effect.succeed(Either.left(`file ${e.path} ${e.detail}`)))
  )
}
