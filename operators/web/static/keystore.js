// The wallet's key pair and id in IndexedDB (db "cbdc-wallet", store "keys"). CryptoKey objects
// are stored as they are: the private key stays non-extractable, even to this page.

const DB = "cbdc-wallet";
const STORE = "keys";
const RECORD = "wallet";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

// {keyPair, walletId, publicKey} or undefined.
export function loadWallet() {
  return withStore("readonly", (store) => store.get(RECORD));
}

export function saveWallet(record) {
  return withStore("readwrite", (store) => store.put(record, RECORD));
}

export function forgetWallet() {
  return withStore("readwrite", (store) => store.delete(RECORD));
}
