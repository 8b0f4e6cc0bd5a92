// Demo identity evidence that passes the operator's checks (cbdc/identity.py): a +86 mobile
// number, a resident ID number with its GB 11643 check digit, a bank account with its Luhn
// digit. Random, so each demo wallet is a new holder (one wallet per ID number and class).

function digits(n) {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => String(b % 10)).join("");
}

function pick(list) {
  return list[crypto.getRandomValues(new Uint32Array(1))[0] % list.length];
}

export function demoPhone() {
  return "+861" + pick("3456789") + digits(9);
}

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = "10X98765432";

export function residentIdCheckDigit(first17) {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * ID_WEIGHTS[i];
  return ID_CHECK[sum % 11];
}

export function demoIdNumber() {
  const region = pick(["110101", "310101", "440300", "330106", "510104"]);
  const year = 1960 + Number(digits(2)) % 45;
  const month = String(1 + (Number(digits(2)) % 12)).padStart(2, "0");
  const day = String(1 + (Number(digits(2)) % 28)).padStart(2, "0");
  const first17 = region + year + month + day + digits(3);
  return first17 + residentIdCheckDigit(first17);
}

export function luhnCheckDigit(prefix) {
  let total = 0;
  [...prefix].reverse().forEach((ch, i) => {
    let d = Number(ch);
    if (i % 2 === 0) d = d > 4 ? d * 2 - 9 : d * 2; // doubled once the check digit is appended
    total += d;
  });
  return String((10 - (total % 10)) % 10);
}

export function demoBankAccount() {
  const prefix = pick(["6222", "6217", "6228"]) + digits(11);
  return prefix + luhnCheckDigit(prefix);
}

const GIVEN = ["Li Na", "Wang Wei", "Zhang Min", "Liu Yang", "Chen Jing", "Ada Park", "Sam Reed"];

export function demoName() {
  return pick(GIVEN);
}
