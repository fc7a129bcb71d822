/** `bottle get` lists what is live, as a table and as JSON. */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { AGENT_IMAGE, bottle, EGRESS_IMAGE, engineAvailable, ensureTestImages, scrub, uniquePrefix } from "../support/docker.js"

const available = engineAvailable()

describe.skipIf(!available)("bottle get", () => {
  const prefix = uniquePrefix("get")
  const home = mkdtempSync(join(tmpdir(), "bottle-home-"))
  const env = { BOTTLE_PREFIX: prefix, BOTTLE_HOME: home, BOTTLE_EGRESS_IMAGE: EGRESS_IMAGE, BOTTLE_SMOLVM: "/nonexistent/smolvm" }
  afterAll(() => scrub(prefix))

  it("shows each bottle with backend, state and services", () => {
    ensureTestImages()
    expect(bottle(env, "get").stdout).toContain("No bottles.")
    const file = join(mkdtempSync(join(tmpdir(), "bottle-specs-")), "s.yaml")
    writeFileSync(file, `apiVersion: bottle/v1\nkind: Bottle\nmetadata: { name: listed }\nspec:\n  image: ${AGENT_IMAGE}\n  egress: { allow: [api.anthropic.com] }\n  resources: { memory: 64m }\n`)
    expect(bottle(env, "apply", "-f", file).status).toBe(0)
    const table = bottle(env, "get")
    expect(table.status).toBe(0)
    expect(table.stdout.split("\n")[0]).toMatch(/^BACKEND\s+NAME\s+SET\s+STATE\s+STATE DIR\s+VERIFIED\s+SERVICES$/)
    // apply proved the fence; get shows when.
    expect(table.stdout).toMatch(/docker\s+listed\s+default\s+running\s+present\s+ok \d+s ago\s+agent:running,egress:running/)
    const json = JSON.parse(bottle(env, "get", "-o", "json").stdout)
    expect(json.bottles).toEqual([{
      backend: "docker", name: "listed", set: "default", state: "running", services: ["agent:running", "egress:running"], stateDir: "present",
      verified: { ok: true, at: expect.stringMatching(/^\d{4}-/), failed: [] }
    }])
  })
})
