/**
 * The orders bottle sorts names in. The agent's secrets are listed in the
 * order of byEnvName, which is part of its container's hash: it must be the
 * order earlier builds got from localeCompare in an English or C locale
 * (else an upgrade recreates every bottle with two secrets), and the same
 * whatever the locale.
 */
import { describe, expect, it } from "vitest"
import { byEnvName, byText } from "../src/resources/order.js"

/** Every name of up to three characters from an alphabet with '_', digits, and letters in both cases. */
const names = (): ReadonlyArray<string> => {
  const alphabet = [..."_09aAbBzZ"]
  const out: Array<string> = []
  let level = [""]
  for (let length = 1; length <= 3; length++) {
    level = level.flatMap((p) => alphabet.map((c) => p + c))
    out.push(...level)
  }
  return out
}

describe("byEnvName", () => {
  it("agrees with the root collation (what localeCompare gave in English) on every pair of short names", () => {
    const root = new Intl.Collator("und")
    const english = new Intl.Collator("en")
    const xs = names()
    const disagreements: Array<string> = []
    for (const a of xs) {
      for (const b of xs) {
        const want = Math.sign(root.compare(a, b))
        if (Math.sign(byEnvName(a, b)) !== want || Math.sign(english.compare(a, b)) !== want) disagreements.push(`${a} ${b}`)
      }
    }
    expect(xs.length).toBe(9 + 81 + 729)
    expect(disagreements).toEqual([])
  })

  it("sorts '_' before digits before letters, a name before its longer names, and case only where all else ties, lower first", () => {
    expect(["GHA", "gh", "GH_TOKEN", "Gh", "A1", "A_1", "a", "Z"].sort(byEnvName)).toEqual(["a", "A_1", "A1", "gh", "Gh", "GH_TOKEN", "GHA", "Z"])
  })

  it("is not the Estonian order, where 'z' comes before 't'", () => {
    expect(["Z_KEY", "T_KEY"].sort(byEnvName)).toEqual(["T_KEY", "Z_KEY"])
    expect(["Z_KEY", "T_KEY"].sort(new Intl.Collator("et").compare)).toEqual(["Z_KEY", "T_KEY"])
  })
})

describe("byText", () => {
  it("orders by code units", () => {
    expect(["z-one", "t-one", "s-one", "a10", "a9", "a-b"].sort(byText)).toEqual(["a-b", "a10", "a9", "s-one", "t-one", "z-one"])
  })
})
