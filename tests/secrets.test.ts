/**
 * A secret's value goes where it must (the proxy's config for an injected
 * one, the agent's env for one that is not) and nowhere else: not in a hash,
 * a label, the plan or its JSON; a changed value still replaces what uses it.
 */
import { describe, expect, it } from "vitest"
import { plan } from "../src/reconcilers/plan.js"
import { planJson, renderPlan } from "../src/reconcilers/render.js"
import type { DesiredSecret } from "../src/resources/desired.js"
import { realiseDocker } from "../src/resources/realise.js"
import { digestOf } from "../src/resources/secrets.js"
import { bottle, ctx, emptyWorld, observed, options, worldAfterApply } from "./support/fixtures.js"

const key = Buffer.alloc(32, 1)
const secret = (name: string, value: string, inject = false): DesiredSecret =>
  ({ name, value, digest: digestOf(key, value), inject: inject ? { host: "api.anthropic.com", header: "x-api-key", format: "{value}" } : undefined })
const VALUE = "sk-ant-very-secret-value"
const withSecrets = (value = VALUE) => bottle("s", { secrets: [secret("ANTHROPIC_API_KEY", value, true), secret("GH_TOKEN", `gh-${value}`)] })

describe("secrets", () => {
  it("an injected one is a placeholder for the agent and a file for the proxy; one that is not is the agent's env", () => {
    const r = realiseDocker(withSecrets(), ctx)
    const agent = r.containers.find((c) => c.service === "agent")!
    expect(agent.body.Env).toContain("ANTHROPIC_API_KEY=bottle-placeholder-anthropic_api_key")
    expect(agent.body.Env).toContain(`GH_TOKEN=gh-${VALUE}`)
    expect(r.stateDir.files["egress/secrets/ANTHROPIC_API_KEY"]).toMatchObject({ content: VALUE, mode: 0o600 })
    expect(Object.keys(r.stateDir.files).filter((f) => f.startsWith("agent/")).every((f) => !String(r.stateDir.files[f]!.content).includes(VALUE))).toBe(true)
    expect(JSON.parse(String(r.stateDir.files["egress/policy.json"]!.content)).inject).toEqual([
      { host: "api.anthropic.com", header: "x-api-key", format: "{value}", file: "secrets/ANTHROPIC_API_KEY", placeholder: "bottle-placeholder-anthropic_api_key" }
    ])
  })

  it("never reaches a label, a hash, the plan or its JSON", () => {
    const r = realiseDocker(withSecrets(), ctx)
    for (const c of r.containers) expect(JSON.stringify(c.body.Labels)).not.toContain(VALUE)
    expect(JSON.stringify(r.stateDir.metadata)).not.toContain(VALUE)
    const egress = r.containers.find((c) => c.service === "egress")!
    expect(JSON.stringify(egress.body)).not.toContain(VALUE)
    const p = plan([withSecrets()], observed(emptyWorld()), options())
    expect(renderPlan(p)).not.toContain(VALUE)
    expect(JSON.stringify(planJson(p))).not.toContain(VALUE)
  })

  it("a changed value replaces what uses it (the proxy for an injected one, the agent for one in its env), by digest", () => {
    const w = worldAfterApply([withSecrets()])
    const p = plan([withSecrets("another-value")], observed(w), options())
    const replaced = p.actions.filter((a) => a._tag === "CreateContainer").map((a) => a.resource)
    expect(replaced.sort()).toEqual(["claude-bottle-s-agent-1", "claude-bottle-s-egress-1"])
  })

  it("one that cannot be had refuses its bottle only, naming it", () => {
    const p = plan([bottle("s", { secretProblems: ["secret K: environment variable K is not set"] }), bottle("other")], observed(emptyWorld()), options())
    const blocked = p.actions.find((a) => a._tag === "Blocked")
    expect(blocked?._tag === "Blocked" ? `${blocked.bottle}: ${blocked.rule}: ${blocked.cause}` : "").toBe("s: secret missing: secret K: environment variable K is not set: bottle will not start it without")
    expect(p.actions.some((a) => a.bottle === "other" && a._tag === "CreateContainer")).toBe(true)
  })
})
