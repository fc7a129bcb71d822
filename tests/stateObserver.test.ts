/**
 * The state-dir observer on a real filesystem (no Docker needed): what it
 * reads, what it leaves alone and why, and that `.preserve` in any form
 * protects, even a dangling symlink or a directory.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { stateSource } from "../src/observers/stateObserver.js"

const root = () => {
  const home = mkdtempSync(join(tmpdir(), "bottle-state-obs-"))
  const r = join(home, "state")
  mkdirSync(r)
  return r
}
const dir = (r: string, name: string, metadata?: string) => {
  mkdirSync(join(r, name, "workspace"), { recursive: true })
  if (metadata !== undefined) writeFileSync(join(r, name, "metadata.json"), metadata)
  return join(r, name)
}

describe("state-dir observer", () => {
  it.effect("reads each bottle's dir, metadata and .preserve marker in any form; leaves odd entries alone with a reason", () =>
    Effect.gen(function* () {
      const r = root()
      dir(r, "plain", JSON.stringify({ name: "plain", backend: "docker", set: "default", specHash: "h", createdAt: "t", extra: 1 }))
      dir(r, "no-meta")
      dir(r, "bad-meta", "{not json")
      writeFileSync(join(dir(r, "kept-file"), ".preserve"), "")
      mkdirSync(join(dir(r, "kept-dir"), ".preserve"))
      symlinkSync("/nonexistent/target", join(dir(r, "kept-dangling"), ".preserve"))
      writeFileSync(join(r, "a-file"), "x")
      mkdirSync(join(r, "with space"))
      mkdirSync(join(r, ".hidden"))
      symlinkSync(tmpdir(), join(r, "escape"))
      const s = yield* stateSource(r)
      expect(s._tag).toBe("Ok")
      if (s._tag !== "Ok") return
      const byName = Object.fromEntries(s.value.dirs.map((d) => [d.name, d]))
      expect(Object.keys(byName).sort()).toEqual(["bad-meta", "kept-dangling", "kept-dir", "kept-file", "no-meta", "plain"])
      expect(byName["plain"]!.metadata).toMatchObject({ name: "plain", backend: "docker", set: "default", specHash: "h" })
      expect(byName["no-meta"]!.metadata).toBeUndefined()
      expect(byName["bad-meta"]!.metadata).toBeUndefined()
      expect(Object.fromEntries(s.value.dirs.map((d) => [d.name, d.preserve]))).toEqual({
        "bad-meta": false, "kept-dangling": true, "kept-dir": true, "kept-file": true, "no-meta": false, plain: false
      })
      expect(Object.fromEntries(s.value.ignored.map((i) => [i.name, i.reason]))).toEqual({
        ".hidden": "hidden entry", "a-file": "not a directory", "with space": "not a bottle name", escape: "a symlink, not a directory"
      })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("no state root yet is an empty snapshot; one that cannot be listed is Failed, never empty", () =>
    Effect.gen(function* () {
      const missing = yield* stateSource(join(mkdtempSync(join(tmpdir(), "bottle-state-obs-")), "state"))
      expect(missing).toMatchObject({ _tag: "Ok", value: { dirs: [], ignored: [] } })
      // A state root that cannot be listed (here: a file where the directory should be).
      const home = mkdtempSync(join(tmpdir(), "bottle-state-obs-"))
      writeFileSync(join(home, "state"), "not a directory")
      const broken = yield* stateSource(join(home, "state"))
      expect(broken).toMatchObject({ _tag: "Failed", source: "state dirs" })
      expect(broken._tag === "Failed" && broken.error).toContain(`cannot list ${join(home, "state")}`)
    }).pipe(Effect.provide(NodeContext.layer)))
})
