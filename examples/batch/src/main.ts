// Computes, prints, and exits with a chosen code; the code reaches the host as the machine's.
const limit = Number(process.env.PRIMES_BELOW ?? 100000);
const sieve = new Uint8Array(limit);
let count = 0;
for (let i = 2; i < limit; i++) {
  if (sieve[i]) continue;
  count++;
  for (let j = i * i; j < limit; j += i) sieve[j] = 1;
}
console.log(`batch: ${count} primes below ${limit}`);
process.exitCode = Number(process.env.EXIT_CODE ?? 0);
