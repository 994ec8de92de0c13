/**
 * RFC 3339 timestamps of the list (`since`, the cursor's position), read into the one exact form the builds
 * repository compares created_at with: UTC, to the microsecond (timestamptz's precision), as
 * `YYYY-MM-DDTHH:MM:SS.ffffffZ`. The caller's text never reaches PostgreSQL's own parser, which refuses offsets
 * past ±15:59 that RFC 3339 allows (an error, not a 400); JavaScript's Date is no judge either: it rolls 02-30 over.
 */

// A space for the T is allowed by RFC 3339's note; an unencoded + in a query string arrives as a space, and fails.
const RFC_3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,30}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** The instant an RFC 3339 timestamp names, in the exact UTC form, or undefined when it is not one (years 0001-9999). */
export function exactUtc(text: string): string | undefined {
  const m = RFC_3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const [offsetHours, offsetMinutes] = [Number(m[9] ?? 0), Number(m[10] ?? 0)];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 60) return undefined;
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  const fraction = m[7] ?? '';
  // A finer instant than a microsecond is rounded up: "at or after" it then starts at the next microsecond.
  let micros = Number(fraction.slice(0, 6).padEnd(6, '0')) + (/[1-9]/.test(fraction.slice(6)) ? 1 : 0);
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  // Second 60 (a leap second) reads as the next minute's first, as PostgreSQL reads it.
  at.setUTCHours(hour, minute - (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes), second + Math.floor(micros / 1_000_000), 0);
  micros %= 1_000_000;
  const utcYear = at.getUTCFullYear();
  if (utcYear < 1 || utcYear > 9999) return undefined;
  return `${at.toISOString().slice(0, 19)}.${String(micros).padStart(6, '0')}Z`;
}

function daysIn(year: number, month: number): number {
  const end = new Date(0);
  end.setUTCFullYear(year, month, 0);
  return end.getUTCDate();
}
