// A window of time buckets that follows the clock (the History charts, the board's strip).

// Append a bucket (dropping the oldest) for every `grain` seconds the clock has passed the last
// one; `shift()` moves the caller's series along with `times`. Returns the current bucket.
export function rollWindow(times, grain, shift) {
  const now = Date.now() / 1000;
  while (now >= times[times.length - 1] + grain) {
    times.push(times[times.length - 1] + grain);
    times.shift();
    shift();
  }
  return times.length - 1;
}
