/**
 * The one order bottle sorts names in: by UTF-16 code units. The same on
 * every machine, unlike localeCompare, which follows the locale in LANG
 * (Estonian puts 'z' before 't'), so a plan's order would depend on whose
 * shell ran it; and loading the collator behind localeCompare costs about
 * 10 ms of a command. Pure.
 */
export const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
