/**
 * The one meaning of `egress.allow`, and how each proxy renders it: the
 * matcher the mitmproxy addon mirrors, and pipelock's config, whose `*.d`
 * would also allow `d` unless bottle blocks it.
 */
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import { allowedBy, parseAllowEntry, parseAllowList } from "../src/resources/egressRules.js"
import { renderEgressPolicy, renderPipelockConfig } from "../src/resources/realise.js"
import { bottle } from "./support/fixtures.js"

const rules = parseAllowList(["allowed.test", "*.wild.test", "port.test:8443", "Case.Test."])
const allowed = (host: string, port = 443) => allowedBy(rules, host, port)?.entry ?? "refused"

describe("egress.allow: one meaning", () => {
  it.each([
    ["allowed.test", 443, "allowed.test"],
    ["allowed.test", 80, "allowed.test"],
    ["ALLOWED.Test.", 443, "allowed.test"],
    ["evilallowed.test", 443, "refused"],
    ["allowed.test.evil.test", 443, "refused"],
    ["sub.allowed.test", 443, "refused"],
    ["allowed.test", 8443, "refused"],
    ["wild.test", 443, "refused"],
    ["a.wild.test", 443, "*.wild.test"],
    ["x.y.wild.test", 80, "*.wild.test"],
    ["evilwild.test", 443, "refused"],
    ["a.wild.test.evil", 443, "refused"],
    ["port.test", 8443, "port.test:8443"],
    ["port.test", 443, "refused"],
    ["case.test", 443, "Case.Test."]
  ] as const)("%s:%i is %s", (host, port, want) => {
    expect(allowed(host, port)).toBe(want)
  })

  it.each([
    ["*", "every host"],
    ["*.com", "top-level domain"],
    ["10.0.0.1", "IP addresses"],
    ["[::1]:443", "IP addresses"],
    ["a.*.test", "whole first label"],
    ["http://x.test/", "not a URL"],
    ["x.test:99999", "port"],
    ["x.test:0", "port"],
    ["with space.test", "spaces"],
    ["", "empty"],
    ["-bad-.test", "host name"]
  ])("%j is refused (%s)", (entry, fragment) => {
    const r = parseAllowEntry(entry)
    expect(typeof r === "string" ? r : "accepted").toContain(fragment)
  })
})

describe("rendered for each proxy", () => {
  it("mitmproxy's policy carries every rule as parsed, ports included", () => {
    expect(renderEgressPolicy(bottle("b"), rules)).toEqual({
      bottle: "b",
      rules: [
        { entry: "allowed.test", domain: "allowed.test", wildcard: false, ports: [443, 80] },
        { entry: "*.wild.test", domain: "wild.test", wildcard: true, ports: [443, 80] },
        { entry: "port.test:8443", domain: "port.test", wildcard: false, ports: [8443] },
        { entry: "Case.Test.", domain: "case.test", wildcard: false, ports: [443, 80] }
      ],
      inject: []
    })
  })

  it("pipelock's config blocks d for *.d (pipelock's *.d also matches d), raises its limits and moves its stats", () => {
    const config = parse(renderPipelockConfig(bottle("b"), parseAllowList(["api.anthropic.com", "*.github.com", "*.x.test", "x.test"])))
    expect(config.mode).toBe("strict")
    expect(config.api_allowlist).toEqual(["api.anthropic.com", "*.github.com", "*.x.test", "x.test"])
    // github.com is not allowed by the spec; x.test is (its own entry), so it is not blocked.
    expect(config.fetch_proxy.monitoring.blocklist).toEqual(["github.com"])
    expect(config.fetch_proxy.monitoring.max_requests_per_minute).toBeGreaterThanOrEqual(100_000)
    expect(config.forward_proxy).toMatchObject({ enabled: true, sni_verification: true })
    expect(config.forward_proxy.max_tunnel_seconds).toBeGreaterThanOrEqual(3600)
    expect(config.forward_proxy.idle_timeout_seconds).toBeGreaterThanOrEqual(600)
    expect(config.metrics_listen).toMatch(/^127\.0\.0\.1:/)
    expect(config.fetch_proxy.listen).toBe("0.0.0.0:8888")
  })
})
