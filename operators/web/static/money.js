// Amounts: integers in minor units on the wire, major units on screen ("1,234.56 CNY"), as
// cbdc.money.format_amount and parse_amount do it. No floating point.

export function formatAmount(minor, decimals, currency) {
  const sign = minor < 0 ? "-" : "";
  const digits = String(Math.abs(minor)).padStart(decimals + 1, "0");
  const units = digits.slice(0, digits.length - decimals) || "0";
  const grouped = units.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = decimals ? "." + digits.slice(digits.length - decimals) : "";
  return `${sign}${grouped}${frac} ${currency}`.trim();
}

// "12.34" -> 1234 (2 decimals); throws a readable Error for anything else. Commas only as
// thousands groups ("1,234.50"): "12,34" is refused, never read as 1234 (as cbdc.money does).
export function parseAmount(text, decimals) {
  const clean = String(text).trim();
  const match = /^([0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.([0-9]*))?$/.exec(clean);
  if (!match) throw new Error(`"${text}" is not an amount (write it like 1234.56 or 1,234.56)`);
  const frac = match[2] || "";
  if (frac.length > decimals) throw new Error(`"${text}" has more than ${decimals} decimals`);
  const minor = Number(match[1].replaceAll(",", "") + frac.padEnd(decimals, "0"));
  if (!Number.isSafeInteger(minor)) throw new Error(`"${text}" is too large`);
  if (minor <= 0) throw new Error("the amount must be more than zero");
  return minor;
}

// Minor units back to the text an amount input accepts ("12.34", no grouping).
export function majorText(minor, decimals) {
  const digits = String(minor).padStart(decimals + 1, "0");
  if (!decimals) return digits;
  return digits.slice(0, -decimals) + "." + digits.slice(-decimals);
}
