/** Golden tests of the plan text a person reads. */
import { describe, expect, it } from "vitest"
import { plan } from "../src/reconcilers/plan.js"
import { colourStyle, renderPlan } from "../src/reconcilers/render.js"
import { Compose } from "../src/resources/labels.js"
import { bottle, container, emptyWorld, network, observed, options, worldAfterApply } from "./support/fixtures.js"

describe("renderPlan", () => {
  it("shows creation like terraform", () => {
    expect(renderPlan(plan([bottle("a")], observed(emptyWorld()), options()))).toBe(`bottle a:
  + state dir /home/u/.claude-bottle/state/a  (missing)
  + network claude-bottle-a_internal  (missing)
  + network claude-bottle-a_egress  (missing)
  + container claude-bottle-a-egress-1  (missing)
  + container claude-bottle-a-agent-1  (missing)

Plan: 5 to add, 0 to change, 0 to destroy.`)
  })

  it("shows replace, start, destroy and blocked with their causes", () => {
    const w = worldAfterApply([bottle("a"), bottle("b"), bottle("keep", { preserve: true })])
    w.containers = w.containers.map((c) => (c.name === "claude-bottle-b-agent-1" ? { ...c, state: "exited" } : c))
    const p = plan([bottle("a", { env: { X: "1" } }), bottle("b")], observed(w), options("all"))
    expect(renderPlan(p)).toBe(`bottle a:
  ~ state dir update /home/u/.claude-bottle/state/a  (spec changed)
  -/+ container claude-bottle-a-agent-1  (spec changed: env)

bottle b:
  ~ container start claude-bottle-b-agent-1  (stopped (exited))

bottle keep:
  - container claude-bottle-keep-agent-1  (not in spec)
  - container claude-bottle-keep-egress-1  (not in spec)
  - network claude-bottle-keep_egress  (not in spec)
  - network claude-bottle-keep_internal  (not in spec)
  ! state dir /home/u/.claude-bottle/state/keep  (blocked: preserve: .preserve marker: only a person removes this state dir)

Plan: 0 to add, 3 to change, 4 to destroy, 1 blocked.`)
  })

  it("says so when there is nothing to do", () => {
    const b = [bottle("a")]
    expect(renderPlan(plan(b, observed(worldAfterApply(b)), options()))).toBe("No changes. 5 resources in sync.")
  })

  it("names the observer that failed", () => {
    const p = plan([], observed(emptyWorld(), { smolvm: { _tag: "Failed", source: "smolvm", error: "timed out after 30s" } }), options("all"))
    expect(renderPlan(p).split("\n")[0]).toBe("observation incomplete: smolvm failed: timed out after 30s")
  })

  it("shows a smolmachines bottle: bundle network, bundle, machine", () => {
    expect(renderPlan(plan([bottle("vm", { backend: "smolmachines" })], observed(emptyWorld()), options()))).toBe(`bottle vm:
  + state dir /home/u/.claude-bottle/state/vm  (missing)
  + network claude-bottle-bundle-vm  (missing)
  + container claude-bottle-sidecars-vm  (missing)
  + machine claude-bottle-vm  (missing)

Plan: 4 to add, 0 to change, 0 to destroy.`)
  })

  it("shows a cleanup: a compose project with its volume, a machine with its bundle and state, and a stray", () => {
    const w = worldAfterApply([bottle("old", { backend: "smolmachines" })])
    w.containers.push(container("claude-bottle-legacy-agent-1", { [Compose.project]: "claude-bottle-legacy", [Compose.service]: "agent" }), container("claude-bottle-stray"))
    w.networks.push(network("claude-bottle-legacy_default", { [Compose.project]: "claude-bottle-legacy" }))
    w.volumes.push({ name: "claude-bottle-legacy_data", labels: { [Compose.project]: "claude-bottle-legacy" } })
    expect(renderPlan(plan([], observed(w), options("all")))).toBe(`bottle legacy:
  - container claude-bottle-legacy-agent-1  (not in spec)
  - network claude-bottle-legacy_default  (not in spec)
  - volume claude-bottle-legacy_data  (not in spec)

bottle old:
  - machine claude-bottle-old  (not in spec)
  - container claude-bottle-sidecars-old  (not in spec)
  - network claude-bottle-bundle-old  (not in spec)
  - state dir /home/u/.claude-bottle/state/old  (not in spec)

leftovers:
  - container claude-bottle-stray  (leftover)

Plan: 0 to add, 0 to change, 8 to destroy.`)
  })

  it("colours the signs and dims the causes only when asked to", () => {
    const p = plan([bottle("a")], observed(emptyWorld()), options())
    expect(renderPlan(p, colourStyle)).toContain("\u001b[32m+\u001b[0m state dir /home/u/.claude-bottle/state/a  \u001b[2m(missing)\u001b[0m")
    expect(renderPlan(p)).not.toContain("\u001b[")
  })
})
