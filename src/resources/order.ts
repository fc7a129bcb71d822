/**
 * The orders bottle sorts names in, the same on every machine. Never
 * localeCompare: it follows the locale in LANG (Estonian puts 'z' before
 * 't'), so a plan's order, or a hash, would depend on whose shell ran it;
 * and loading the collator behind it costs about 10 ms of a command.
 */

/** Names, ids and times: by UTF-16 code units. Pure. */
export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Where a character of an environment variable name sorts first: '_', then digits, then letters whatever their case. */
const primary = (c: number): number =>
  c === 0x5f ? 0 : c <= 0x39 ? 1 + c - 0x30 : 11 + (c >= 0x61 ? c - 0x61 : c - 0x41)

/**
 * Orders environment variable names (letters, digits and '_', as the spec
 * allows) as the Unicode root collation does, which localeCompare gave in an
 * English or C locale: '_' before digits before letters, case only where
 * the letters tie, lower before upper. The agent's environment lists its
 * secrets in this order, and that list is part of its container's hash: so
 * it is the order earlier builds wrote in those locales, now the same in
 * every locale (a change of LANG no longer recreates the container). Pure.
 */
export const byEnvName = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = primary(a.charCodeAt(i)) - primary(b.charCodeAt(i))
    if (d !== 0) return d < 0 ? -1 : 1
  }
  if (a.length !== b.length) return a.length < b.length ? -1 : 1
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a.charCodeAt(i) >= 0x61 ? -1 : 1
  }
  return 0
}
