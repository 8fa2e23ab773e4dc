// The JavaScript side of dobj's Worker API: the web platform classes a
// Worker expects (Request, Response, Headers, URL, ...) and the Durable
// Object API (state, storage, namespaces, stubs) over the native functions
// of src/js/bindings.cc, passed in as N. Evaluated once per isolate, before
// the Worker's modules; returns what the engine needs from it.
//
// Native handles (an object's or a stub's) live in private fields, out of
// reach of the Worker's code.
(function (N) {
  'use strict';
  const G = globalThis;
  const define = (name, value) =>
    Object.defineProperty(G, name, { value, writable: true, configurable: true, enumerable: false });

  // ---- Errors -------------------------------------------------------------
  class DOMException extends Error {
    constructor(message = '', name = 'Error') {
      super(message);
      this.name = name;
    }
  }
  define('DOMException', DOMException);

  // ---- Text, bytes, base64 ------------------------------------------------
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') { return N.utf8Encode(String(s)); }
    encodeInto(s, dest) {
      const bytes = N.utf8Encode(String(s));
      const n = Math.min(bytes.length, dest.length);
      dest.set(bytes.subarray(0, n));
      return { read: n === bytes.length ? String(s).length : undefined, written: n };
    }
  }
  class TextDecoder {
    constructor(label = 'utf-8', options = {}) {
      if (!/^utf-?8$/i.test(label)) throw new RangeError(`TextDecoder: only utf-8 is supported, not ${label}`);
      this.fatal = !!options.fatal;
    }
    get encoding() { return 'utf-8'; }
    decode(input) {
      if (input === undefined) return '';
      return N.utf8Decode(toBytes(input), this.fatal);
    }
  }
  define('TextEncoder', TextEncoder);
  define('TextDecoder', TextDecoder);
  function toBytes(x) {
    if (x instanceof Uint8Array) return x;
    if (x instanceof ArrayBuffer) return new Uint8Array(x);
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    throw new TypeError('expected an ArrayBuffer or a typed array');
  }
  define('atob', (s) => N.atob(String(s)));
  define('btoa', (s) => N.btoa(String(s)));

  // ---- Timers, microtasks, clone, console, crypto, performance -----------
  let nextTimer = 1;
  const timers = new Map();
  function startTimer(fn, ms, args, repeat) {
    if (typeof fn !== 'function') throw new TypeError('setTimeout: the callback must be a function');
    const id = nextTimer++;
    const delay = Math.max(0, Number(ms) || 0);
    timers.set(id, true);
    const tick = () => N.sleep(delay).then(() => {
      if (!timers.has(id)) return;
      if (!repeat) timers.delete(id);
      try { fn(...args); } finally { if (repeat && timers.has(id)) tick(); }
    });
    tick();
    return id;
  }
  define('setTimeout', (fn, ms, ...args) => startTimer(fn, ms, args, false));
  define('setInterval', (fn, ms, ...args) => startTimer(fn, ms, args, true));
  define('clearTimeout', (id) => { timers.delete(id); });
  define('clearInterval', (id) => { timers.delete(id); });
  define('queueMicrotask', (fn) => { Promise.resolve().then(fn); });
  define('structuredClone', (v) => N.clone(v));
  // Workers' scheduler.wait (a timer as a promise, which a signal may abort)
  // and navigator, as workerd gives them.
  define('scheduler', {
    wait: (ms, options) => new Promise((resolve, reject) => {
      const signal = options && options.signal;
      if (signal && signal.aborted) return reject(signal.reason);
      const id = startTimer(resolve, ms, [], false);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(id); reject(signal.reason); }, { once: true });
    }),
  });
  define('navigator', { userAgent: 'Cloudflare-Workers', hardwareConcurrency: 1 });
  const format = (args) => args.map((a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack || String(a);
    try { return JSON.stringify(a) ?? String(a); } catch { return String(a); }
  }).join(' ');
  define('console', {
    log: (...a) => N.log(1, format(a)),
    info: (...a) => N.log(1, format(a)),
    debug: (...a) => N.log(0, format(a)),
    warn: (...a) => N.log(2, format(a)),
    error: (...a) => N.log(3, format(a)),
  });
  define('performance', { now: () => N.now(), timeOrigin: 0 });
  // crypto.subtle through OpenSSL (src/js/crypto.cc): digest; HMAC;
  // RSASSA-PKCS1-v1_5, RSA-PSS, ECDSA (P-256/384/521) and Ed25519 signatures
  // (importKey of spki, pkcs8, jwk and, for EC and Ed25519 public keys, raw;
  // generateKey; exportKey); AES-GCM encryption; and Workers'
  // timingSafeEqual. Other algorithms are NotSupportedError.
  const upperName = (a) => String(typeof a === 'string' ? a : a && a.name).toUpperCase();
  const kHmacHashes = { 'SHA-1': 512, 'SHA-256': 512, 'SHA-384': 1024, 'SHA-512': 1024 };  // block bits
  const notSupported = (what) => new DOMException(`crypto.subtle: ${what} is not supported`, 'NotSupportedError');
  const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const fromBase64url = (text) => {
    const b64 = String(text).replace(/-/g, '+').replace(/_/g, '/');
    return Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
  };
  // Algorithm names as WebCrypto spells them, by their upper case, and the
  // key kind of crypto.cc for the asymmetric ones.
  const kAlgorithms = {
    'HMAC': ['HMAC', null], 'AES-GCM': ['AES-GCM', null], 'PBKDF2': ['PBKDF2', null], 'HKDF': ['HKDF', null],
    'RSASSA-PKCS1-V1_5': ['RSASSA-PKCS1-v1_5', 'RSA'], 'RSA-PSS': ['RSA-PSS', 'RSA'],
    'ECDSA': ['ECDSA', 'EC'], 'ED25519': ['Ed25519', 'Ed25519'], 'NODE-ED25519': ['NODE-ED25519', 'Ed25519'],
  };
  const algorithmOf = (a) => {
    const known = kAlgorithms[upperName(a)];
    if (!known) throw notSupported(`algorithm ${typeof a === 'string' ? a : a && a.name}`);
    return known;
  };
  const hashOf = (h) => {
    const name = upperName(h);
    if (!(name in kHmacHashes)) throw notSupported(`hash ${name}`);
    return name;
  };
  const keyMaterial = new WeakMap();  // CryptoKey -> { bytes } or { kind, der, priv }
  class CryptoKey {
    constructor(type, extractable, algorithm, usages) {
      this.type = type; this.extractable = extractable; this.algorithm = algorithm; this.usages = usages;
    }
  }
  define('CryptoKey', CryptoKey);
  const checkUsages = (usages, allowed, what) => {
    for (const u of usages) {
      if (!allowed.includes(u)) throw new DOMException(`${what} cannot be used to ${u}`, 'SyntaxError');
    }
  };
  // Native failures in reading key data are DataErrors.
  const dataError = (fn) => {
    try { return fn(); } catch (e) { throw new DOMException(e.message, 'DataError'); }
  };
  function secretKey(bytes, algorithm, extractable, usages) {
    const [name] = algorithmOf(algorithm);
    let alg;
    if (name === 'HMAC') {
      const hash = hashOf(algorithm.hash);
      checkUsages(usages, ['sign', 'verify'], 'an HMAC key');
      if (bytes.length === 0) throw new DOMException('an HMAC key cannot be empty', 'DataError');
      alg = { name, hash: { name: hash }, length: bytes.length * 8 };
    } else if (name === 'AES-GCM') {
      checkUsages(usages, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'], 'an AES-GCM key');
      if (![16, 24, 32].includes(bytes.length)) throw new DOMException('an AES key must be 128, 192 or 256 bits', 'DataError');
      alg = { name, length: bytes.length * 8 };
    } else if (name === 'PBKDF2' || name === 'HKDF') {
      // Key material to derive from: never extractable (the standard's rule).
      checkUsages(usages, ['deriveBits', 'deriveKey'], `a ${name} key`);
      if (extractable) throw new DOMException(`a ${name} key cannot be extractable`, 'SyntaxError');
      alg = { name };
    } else {
      throw notSupported(`a secret key for ${name}`);
    }
    const key = new CryptoKey('secret', !!extractable, alg, [...usages]);
    keyMaterial.set(key, { bytes });
    return key;
  }
  // A key crypto.cc described: [der, isPrivate, modulus bits, exponent, curve].
  function pairKey(desc, algorithm, extractable, usages) {
    const [name, kind] = algorithmOf(algorithm);
    const [der, priv, bits, exponent, curve] = desc;
    checkUsages(usages, [priv ? 'sign' : 'verify'], `a ${priv ? 'private' : 'public'} ${name} key`);
    let alg;
    if (kind === 'RSA') {
      alg = { name, modulusLength: bits, publicExponent: new Uint8Array(exponent), hash: { name: hashOf(algorithm.hash) } };
    } else if (kind === 'EC') {
      alg = { name, namedCurve: curve };
    } else {
      alg = name === 'NODE-ED25519' ? { name, namedCurve: 'NODE-ED25519' } : { name };
    }
    const key = new CryptoKey(priv ? 'private' : 'public', !!extractable, alg, [...usages]);
    keyMaterial.set(key, { kind, der: new Uint8Array(der), priv });
    return key;
  }
  // The key's material for `usage` with `algorithm`.
  function materialFor(algorithm, key, usage) {
    if (!(key instanceof CryptoKey) || !keyMaterial.has(key)) throw new TypeError('expected a CryptoKey');
    const [name] = algorithmOf(algorithm);
    if (name !== key.algorithm.name) {
      throw new DOMException(`the key is for ${key.algorithm.name}, not ${name}`, 'InvalidAccessError');
    }
    if (!key.usages.includes(usage)) throw new DOMException(`the key's usages do not include ${usage}`, 'InvalidAccessError');
    return keyMaterial.get(key);
  }
  const jwkParts = {
    RSA: ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'],
    EC: ['x', 'y', 'd'],
    Ed25519: ['x', 'd'],
  };
  const kJwkTypes = { RSA: 'RSA', EC: 'EC', Ed25519: 'OKP' };
  // The hash a signature uses, and RSA-PSS's salt (-1: none).
  function signing(algorithm, key, m) {
    if (m.kind === 'RSA') {
      const pss = key.algorithm.name === 'RSA-PSS';
      if (pss && !(Number.isInteger(algorithm.saltLength) && algorithm.saltLength >= 0)) {
        throw new TypeError('RSA-PSS needs a saltLength');
      }
      return [key.algorithm.hash.name, pss ? algorithm.saltLength : -1];
    }
    if (m.kind === 'EC') return [hashOf(algorithm.hash), -1];
    return ['', -1];
  }
  function gcmParams(algorithm) {
    if (algorithm.iv === undefined) throw new TypeError('AES-GCM needs an iv');
    const tagLength = algorithm.tagLength === undefined ? 128 : Number(algorithm.tagLength);
    if (![32, 64, 96, 104, 112, 120, 128].includes(tagLength)) throw new DOMException(`a tag of ${tagLength} bits`, 'OperationError');
    const aad = algorithm.additionalData === undefined ? new Uint8Array(0) : toBytes(algorithm.additionalData);
    return [toBytes(algorithm.iv), aad, tagLength / 8];
  }
  // PBKDF2 and HKDF: `length` bits (a multiple of 8) from the base key.
  function deriveBytes(algorithm, baseKey, length, usage) {
    const m = materialFor(algorithm, baseKey, usage);
    const bits = Number(length);
    if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0) throw new DOMException(`a length of ${length} bits`, 'OperationError');
    const hash = hashOf(algorithm.hash);
    const salt = algorithm.salt === undefined ? new Uint8Array(0) : toBytes(algorithm.salt);
    try {
      if (baseKey.algorithm.name === 'PBKDF2') return N.pbkdf2(hash, m.bytes, salt, Number(algorithm.iterations), bits / 8);
      return N.hkdf(hash, m.bytes, salt, algorithm.info === undefined ? new Uint8Array(0) : toBytes(algorithm.info), bits / 8);
    } catch (e) {
      throw new DOMException(e.message, 'OperationError');
    }
  }
  const subtle = {
    async digest(algorithm, data) { return N.digest(upperName(algorithm), toBytes(data)); },
    async importKey(format, data, algorithm, extractable, usages) {
      const [name, kind] = algorithmOf(algorithm);
      if (kind === null) {
        let bytes;
        if (format === 'raw') bytes = new Uint8Array(toBytes(data));  // a copy: the caller's buffer may change
        else if (format === 'jwk') {
          if (!data || data.kty !== 'oct' || typeof data.k !== 'string') throw new DOMException('a JWK secret key needs kty "oct" and k', 'DataError');
          bytes = fromBase64url(data.k);
        } else throw notSupported(`key format ${format} for ${name}`);
        return secretKey(bytes, algorithm, extractable, usages);
      }
      const curve = kind === 'EC' ? String(algorithm.namedCurve) : '';
      if (format === 'jwk') {
        if (!data || data.kty !== kJwkTypes[kind]) throw new DOMException(`a ${name} JWK needs kty "${kJwkTypes[kind]}"`, 'DataError');
        if (kind === 'EC' && data.crv !== curve) throw new DOMException(`the JWK is on ${data.crv}, not ${curve}`, 'DataError');
        if (kind === 'Ed25519' && data.crv !== 'Ed25519') throw new DOMException('an Ed25519 JWK needs crv "Ed25519"', 'DataError');
        const parts = jwkParts[kind].map((k) => (data[k] === undefined ? undefined : fromBase64url(data[k])));
        return pairKey(dataError(() => N.keyFromParts(kind, curve, parts)), algorithm, extractable, usages);
      }
      if (!['spki', 'pkcs8', 'raw'].includes(format)) throw notSupported(`key format ${format}`);
      return pairKey(dataError(() => N.keyImport(kind, format, toBytes(data), curve)), algorithm, extractable, usages);
    },
    async generateKey(algorithm, extractable, usages) {
      const [name, kind] = algorithmOf(algorithm);
      if (kind === null) {
        const bits = name === 'AES-GCM' ? Number(algorithm.length)
          : algorithm.length !== undefined ? Number(algorithm.length) : kHmacHashes[upperName(algorithm.hash)];
        const bytes = new Uint8Array(Math.ceil((bits || 0) / 8));
        N.randomFill(bytes);
        return secretKey(bytes, algorithm, extractable, usages);
      }
      let param = '';
      if (kind === 'RSA') {
        const e = algorithm.publicExponent ? [...toBytes(algorithm.publicExponent)] : [1, 0, 1];
        while (e.length > 1 && e[0] === 0) e.shift();
        if (e.join() !== '1,0,1') throw notSupported('a public exponent other than 65537');
        param = Number(algorithm.modulusLength);
      } else if (kind === 'EC') {
        param = String(algorithm.namedCurve);
      }
      checkUsages(usages, ['sign', 'verify'], `a ${name} key pair`);
      const [priv, pub] = dataError(() => N.keyGenerate(kind, param));
      return {
        privateKey: pairKey(priv, algorithm, extractable, usages.filter((u) => u === 'sign')),
        publicKey: pairKey(pub, algorithm, true, usages.filter((u) => u === 'verify')),
      };
    },
    async exportKey(format, key) {
      if (!(key instanceof CryptoKey) || !keyMaterial.has(key)) throw new TypeError('expected a CryptoKey');
      if (!key.extractable) throw new DOMException('the key is not extractable', 'InvalidAccessError');
      const m = keyMaterial.get(key);
      const name = key.algorithm.name;
      if (m.bytes) {
        if (format === 'raw') return m.bytes.slice().buffer;
        if (format === 'jwk') {
          const alg = name === 'HMAC' ? 'HS' + key.algorithm.hash.name.slice(4) : `A${key.algorithm.length}GCM`;
          return { kty: 'oct', k: base64url(m.bytes), alg, ext: true, key_ops: [...key.usages] };
        }
        throw notSupported(`key format ${format} for ${name}`);
      }
      if (format === 'jwk') {
        const parts = N.keyParts(m.kind, m.der, m.priv);
        const jwk = { kty: kJwkTypes[m.kind] };
        jwkParts[m.kind].forEach((k, i) => { if (parts[i] !== undefined) jwk[k] = base64url(new Uint8Array(parts[i])); });
        if (m.kind === 'EC') jwk.crv = key.algorithm.namedCurve;
        if (m.kind === 'Ed25519') jwk.crv = 'Ed25519';
        if (m.kind === 'RSA') jwk.alg = (name === 'RSA-PSS' ? 'PS' : 'RS') + key.algorithm.hash.name.slice(4);
        jwk.ext = true;
        jwk.key_ops = [...key.usages];
        return jwk;
      }
      try { return N.keyExport(m.kind, m.der, m.priv, String(format)); } catch (e) { throw new DOMException(e.message, 'InvalidAccessError'); }
    },
    async sign(algorithm, key, data) {
      const m = materialFor(algorithm, key, 'sign');
      if (m.bytes) return N.hmac(key.algorithm.hash.name, m.bytes, toBytes(data));
      const [hash, salt] = signing(algorithm, key, m);
      try { return N.keySign(m.kind, m.der, hash, toBytes(data), salt); } catch (e) { throw new DOMException(e.message, 'OperationError'); }
    },
    async verify(algorithm, key, signature, data) {
      const m = materialFor(algorithm, key, 'verify');
      if (m.bytes) {
        const mac = new Uint8Array(N.hmac(key.algorithm.hash.name, m.bytes, toBytes(data)));
        return N.timingSafeEqual(mac, toBytes(signature));
      }
      const [hash, salt] = signing(algorithm, key, m);
      try { return N.keyVerify(m.kind, m.der, hash, toBytes(signature), toBytes(data), salt); } catch (e) { throw new DOMException(e.message, 'OperationError'); }
    },
    async encrypt(algorithm, key, data) {
      const m = materialFor(algorithm, key, 'encrypt');
      const [iv, aad, tag] = gcmParams(algorithm);
      try { return N.aesGcm(true, m.bytes, iv, aad, tag, toBytes(data)); } catch (e) { throw new DOMException(e.message, 'OperationError'); }
    },
    async decrypt(algorithm, key, data) {
      const m = materialFor(algorithm, key, 'decrypt');
      const [iv, aad, tag] = gcmParams(algorithm);
      try { return N.aesGcm(false, m.bytes, iv, aad, tag, toBytes(data)); } catch (e) { throw new DOMException(e.message, 'OperationError'); }
    },
    async deriveBits(algorithm, baseKey, length) { return deriveBytes(algorithm, baseKey, length, 'deriveBits'); },
    async deriveKey(algorithm, baseKey, derivedKeyAlgorithm, extractable, usages) {
      // As many bits as the derived key needs: an AES key's length, an HMAC
      // key's length or its hash's block.
      const [name] = algorithmOf(derivedKeyAlgorithm);
      const bits = name === 'AES-GCM' ? Number(derivedKeyAlgorithm.length)
        : name === 'HMAC' ? (derivedKeyAlgorithm.length !== undefined ? Number(derivedKeyAlgorithm.length) : kHmacHashes[hashOf(derivedKeyAlgorithm.hash)])
          : NaN;
      if (!(bits > 0)) throw notSupported(`deriving a ${name} key`);
      const bytes = new Uint8Array(await deriveBytes(algorithm, baseKey, bits, 'deriveKey'));
      return secretKey(bytes, derivedKeyAlgorithm, extractable, usages);
    },
    async wrapKey() { throw notSupported('wrapKey'); },
    async unwrapKey() { throw notSupported('unwrapKey'); },
    timingSafeEqual(a, b) {
      a = toBytes(a); b = toBytes(b);
      if (a.byteLength !== b.byteLength) throw new TypeError('timingSafeEqual: the two buffers differ in length');
      return N.timingSafeEqual(a, b);
    },
  };
  define('crypto', {
    randomUUID: () => N.randomUUID(),
    getRandomValues: (array) => { N.randomFill(array); return array; },
    subtle,
  });

  // ---- Events ---------------------------------------------------------------
  class Event {
    constructor(type, init = {}) {
      this.type = String(type);
      this.defaultPrevented = false;
      this.cancelable = !!init.cancelable;
      this.timeStamp = N.now();
    }
    preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
    stopImmediatePropagation() { this.stopped = true; }
  }
  class EventTarget {
    #listeners = null;  // type → [{fn, once}], made by the first listener
    addEventListener(type, fn, options = {}) {
      if (!fn) return;
      if (this.#listeners === null) this.#listeners = new Map();
      const list = this.#listeners.get(type) || [];
      if (!list.some((l) => l.fn === fn)) list.push({ fn, once: !!(options && options.once) });
      this.#listeners.set(type, list);
    }
    removeEventListener(type, fn) {
      const list = this.#listeners?.get(type);
      if (list) this.#listeners.set(type, list.filter((l) => l.fn !== fn));
    }
    dispatchEvent(event) {
      if (this.#listeners === null) return !event.defaultPrevented;
      for (const l of [...(this.#listeners.get(event.type) || [])]) {
        if (l.once) this.removeEventListener(event.type, l.fn);
        if (typeof l.fn === 'function') l.fn.call(this, event); else l.fn.handleEvent(event);
        if (event.stopped) break;
      }
      return !event.defaultPrevented;
    }
  }
  define('Event', Event);
  define('EventTarget', EventTarget);
  class AbortSignal extends EventTarget {
    aborted = false;
    reason = undefined;
    throwIfAborted() { if (this.aborted) throw this.reason; }
    static abort(reason) { const c = new AbortController(); c.abort(reason); return c.signal; }
    static timeout(ms) { const c = new AbortController(); setTimeout(() => c.abort(new DOMException('timed out', 'TimeoutError')), ms); return c.signal; }
  }
  class AbortController {
    signal = new AbortSignal();
    abort(reason = new DOMException('aborted', 'AbortError')) {
      if (this.signal.aborted) return;
      this.signal.aborted = true;
      this.signal.reason = reason;
      this.signal.dispatchEvent(new Event('abort'));
      if (typeof this.signal.onabort === 'function') this.signal.onabort(new Event('abort'));
    }
  }
  define('AbortSignal', AbortSignal);
  define('AbortController', AbortController);

  // ---- URL ------------------------------------------------------------------
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } };
  class URLSearchParams {
    #list = [];
    #url = null;
    constructor(init = '') {
      if (typeof init === 'string') this.#parse(init);
      else if (init instanceof URLSearchParams) this.#list = [...init];
      else if (init && typeof init[Symbol.iterator] === 'function') for (const [k, v] of init) this.#list.push([String(k), String(v)]);
      else if (init && typeof init === 'object') for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
    }
    #parse(s) {
      this.#list = [];
      if (s.startsWith('?')) s = s.slice(1);
      for (const part of s.split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        this.#list.push(i < 0 ? [dec(part), ''] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
      }
    }
    static _bind(params, url, search) { params.#url = url; params.#parse(search); }
    #update() { if (this.#url) this.#url._setSearch(this.toString()); }
    get size() { return this.#list.length; }
    append(k, v) { this.#list.push([String(k), String(v)]); this.#update(); }
    delete(k) { this.#list = this.#list.filter(([n]) => n !== k); this.#update(); }
    get(k) { const e = this.#list.find(([n]) => n === k); return e ? e[1] : null; }
    getAll(k) { return this.#list.filter(([n]) => n === k).map(([, v]) => v); }
    has(k) { return this.#list.some(([n]) => n === k); }
    set(k, v) {
      const i = this.#list.findIndex(([n]) => n === k);
      if (i < 0) this.#list.push([String(k), String(v)]);
      else { this.#list[i] = [String(k), String(v)]; this.#list = this.#list.filter(([n], j) => n !== k || j === i); }
      this.#update();
    }
    sort() { this.#list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this.#update(); }
    forEach(fn, self) { for (const [k, v] of this.#list) fn.call(self, v, k, this); }
    keys() { return this.#list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this.#list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this.#list.map((e) => [...e])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this.#list.map(([k, v]) => enc(k) + '=' + enc(v)).join('&'); }
  }
  define('URLSearchParams', URLSearchParams);

  const defaultPorts = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443' };
  const pathEscape = (p) => p.replace(/[ "<>`#?{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
  function normalizePath(path) {
    const out = [];
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) {
      const s = segs[i];
      if (s === '..' || s.toLowerCase() === '%2e%2e') { if (out.length) out.pop(); if (i === segs.length - 1) out.push(''); }
      else if (s === '.' || s.toLowerCase() === '%2e') { if (i === segs.length - 1) out.push(''); }
      else out.push(s);
    }
    return '/' + out.join('/');
  }
  // scheme, host, port, path, query, fragment of a plain absolute http(s) URL;
  // a path with dot segments or characters to escape takes the long way.
  const kPlainUrl = /^(https?):\/\/([A-Za-z0-9.-]+)(?::(\d+))?(\/[^?#]*)?(\?[^#]*)?(#.*)?$/;
  const kNeedsWork = /[ "<>`{}\\]|\/\.\.?(?:\/|$)|%2e/i;
  class URL {
    #p;
    #params = null;  // made on first use
    constructor(input, base) {
      input = String(input);
      // The usual absolute http(s) URL, already normal: one match, no rework.
      const f = kPlainUrl.exec(input);
      if (f !== null && !kNeedsWork.test(f[4] || '')) {
        const protocol = f[1].toLowerCase() + ':';
        const port = f[3] || '';
        this.#p = {
          protocol, username: '', password: '', hostname: f[2].toLowerCase(),
          port: port === defaultPorts[protocol] ? '' : port, pathname: f[4] || '/',
          search: f[5] && f[5] !== '?' ? f[5] : '', hash: f[6] && f[6] !== '#' ? f[6] : '',
        };
        return;
      }
      input = input.trim();
      const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/.exec(input);
      if (m && (m[1].length > 1)) this.#p = URL.#parseAbsolute(m[1].toLowerCase() + ':', m[2]);
      else {
        if (base === undefined) throw new TypeError(`Invalid URL: ${input}`);
        const b = base instanceof URL ? base : new URL(base);
        this.#p = URL.#resolve(b.#p, input);
      }
    }
    static #parseAbsolute(protocol, rest) {
      const p = { protocol, username: '', password: '', hostname: '', port: '', pathname: '', search: '', hash: '' };
      let h = rest.indexOf('#');
      if (h >= 0) { p.hash = rest.slice(h); rest = rest.slice(0, h); }
      h = rest.indexOf('?');
      if (h >= 0) { p.search = rest.slice(h); rest = rest.slice(0, h); }
      if (p.search === '?') p.search = '';
      if (p.hash === '#') p.hash = '';
      const special = protocol in defaultPorts;
      rest = special ? rest.replace(/\\/g, '/') : rest;
      if (rest.startsWith('//')) {
        rest = rest.slice(2);
        const slash = rest.indexOf('/');
        let auth = slash < 0 ? rest : rest.slice(0, slash);
        rest = slash < 0 ? '' : rest.slice(slash);
        const at = auth.lastIndexOf('@');
        if (at >= 0) {
          const cred = auth.slice(0, at); auth = auth.slice(at + 1);
          const c = cred.indexOf(':');
          p.username = c < 0 ? cred : cred.slice(0, c);
          p.password = c < 0 ? '' : cred.slice(c + 1);
        }
        const pm = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(auth);
        if (!pm) throw new TypeError(`Invalid URL: ${protocol}${rest}`);
        p.hostname = pm[1].toLowerCase();
        p.port = pm[2] || '';
        if (p.port === defaultPorts[protocol]) p.port = '';
        if (special && !p.hostname) throw new TypeError(`Invalid URL: no host`);
        if (/[\s<>^|%]/.test(p.hostname)) throw new TypeError(`Invalid URL: bad host ${p.hostname}`);
        p.pathname = special ? normalizePath(pathEscape(rest || '/')) : pathEscape(rest);
      } else {
        if (special) throw new TypeError(`Invalid URL: ${protocol}${rest}`);
        p.pathname = rest;
        p.opaque = true;
      }
      return p;
    }
    static #resolve(b, input) {
      const p = { ...b, hash: '' };
      let rest = input.replace(/\\/g, '/');
      if (rest.startsWith('//')) return URL.#parseAbsolute(b.protocol, rest);
      let h = rest.indexOf('#');
      let hash = '';
      if (h >= 0) { hash = rest.slice(h); rest = rest.slice(0, h); }
      h = rest.indexOf('?');
      let search = null;
      if (h >= 0) { search = rest.slice(h); rest = rest.slice(0, h); }
      if (rest === '') { if (search !== null) p.search = search; }
      else {
        p.search = search || '';
        if (rest.startsWith('/')) p.pathname = normalizePath(pathEscape(rest));
        else p.pathname = normalizePath(b.pathname.slice(0, b.pathname.lastIndexOf('/') + 1) + pathEscape(rest));
      }
      if (p.search === '?') p.search = '';
      p.hash = hash === '#' ? '' : hash;
      return p;
    }
    _setSearch(s) { this.#p.search = s ? '?' + s : ''; }
    #bindParams() { if (this.#params !== null) URLSearchParams._bind(this.#params, this, this.#p.search); }
    get protocol() { return this.#p.protocol; }
    set protocol(v) { this.#p.protocol = String(v).replace(/:?$/, ':'); }
    get username() { return this.#p.username; }
    get password() { return this.#p.password; }
    get hostname() { return this.#p.hostname; }
    set hostname(v) { this.#p.hostname = String(v).toLowerCase(); }
    get port() { return this.#p.port; }
    set port(v) { this.#p.port = String(v) === defaultPorts[this.#p.protocol] ? '' : String(v); }
    get host() { return this.#p.hostname + (this.#p.port ? ':' + this.#p.port : ''); }
    set host(v) { const [h, port = ''] = String(v).split(':'); this.hostname = h; this.port = port; }
    get origin() { return this.#p.opaque ? 'null' : this.#p.protocol + '//' + this.host; }
    get pathname() { return this.#p.pathname; }
    set pathname(v) { v = String(v); this.#p.pathname = normalizePath(pathEscape(v.startsWith('/') ? v : '/' + v)); }
    get search() { return this.#p.search; }
    set search(v) { v = String(v); this.#p.search = v && v !== '?' ? (v.startsWith('?') ? v : '?' + v) : ''; this.#bindParams(); }
    get searchParams() {
      if (this.#params === null) {
        this.#params = new URLSearchParams();
        URLSearchParams._bind(this.#params, this, this.#p.search);
      }
      return this.#params;
    }
    get hash() { return this.#p.hash; }
    set hash(v) { v = String(v); this.#p.hash = v && v !== '#' ? (v.startsWith('#') ? v : '#' + v) : ''; }
    get href() {
      const p = this.#p;
      if (p.opaque) return p.protocol + p.pathname + p.search + p.hash;
      const cred = p.username ? p.username + (p.password ? ':' + p.password : '') + '@' : '';
      return p.protocol + '//' + cred + this.host + p.pathname + p.search + p.hash;
    }
    set href(v) { this.#p = new URL(v).#p; this.#bindParams(); }
    toString() { return this.href; }
    toJSON() { return this.href; }
    static canParse(u, b) { try { new URL(u, b); return true; } catch { return false; } }
  }
  define('URL', URL);

  // ---- Headers, Request, Response -------------------------------------------
  const headerName = (n) => {
    n = String(n).toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(n)) throw new TypeError(`Invalid header name: ${n}`);
    return n;
  };
  const headerValue = (v) => {
    v = String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    if (/[\0\r\n]/.test(v)) throw new TypeError('Invalid header value');
    return v;
  };
  class Headers {
    // Lower-case name → [values], made on first use; until then the flat
    // [name, value, ...] list the runtime gave (or none).
    #map = null;
    #flat = null;
    constructor(init) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers) { this.#flat = init._flat().slice(); return; }
      if (Array.isArray(init) || typeof init[Symbol.iterator] === 'function') for (const [k, v] of init) this.append(k, v);
      else if (typeof init === 'object') for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    static _fromFlat(flat) { const h = new Headers(); h.#flat = flat; return h; }
    #m() {
      if (this.#map === null) {
        this.#map = new Map();
        const flat = this.#flat;
        this.#flat = null;
        if (flat !== null) for (let i = 0; i < flat.length; i += 2) this.append(flat[i], flat[i + 1]);
      }
      return this.#map;
    }
    append(k, v) { k = headerName(k); const m = this.#m(); const l = m.get(k); if (l) l.push(headerValue(v)); else m.set(k, [headerValue(v)]); }
    set(k, v) { this.#m().set(headerName(k), [headerValue(v)]); }
    delete(k) { this.#m().delete(headerName(k)); }
    has(k) { return this.#m().has(headerName(k)); }
    get(k) { const l = this.#m().get(headerName(k)); return l ? l.join(', ') : null; }
    getSetCookie() { return [...(this.#m().get('set-cookie') || [])]; }
    *entries() {
      const m = this.#m();
      for (const k of [...m.keys()].sort()) {
        if (k === 'set-cookie') for (const v of m.get(k)) yield [k, v];
        else yield [k, m.get(k).join(', ')];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(fn, self) { for (const [k, v] of this.entries()) fn.call(self, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
    _flat() {
      if (this.#map === null) return this.#flat === null ? [] : this.#flat;
      const out = [];
      for (const [k, l] of this.#map) for (const v of l) out.push(k, v);
      return out;
    }
  }
  define('Headers', Headers);

  // ---- Streams ---------------------------------------------------------------
  // ReadableStream, WritableStream and TransformStream of the Streams
  // standard, default (not byte) streams. Bodies stay whole underneath: a
  // stream given as a body is read to its end before the message leaves
  // (a response is sent when its stream closes, not chunk by chunk).
  const kStream = Symbol('stream');
  const kBytesSource = Symbol('bytes');  // a stream over bytes known in full
  const resolved = (v) => Promise.resolve(v);
  class ReadableStreamDefaultController {
    #st;
    constructor(st) { this.#st = st; }
    get desiredSize() {
      const st = this.#st;
      return st.state === 'errored' ? null : st.state === 'closed' ? 0 : st.hwm - st.queue.length;
    }
    enqueue(chunk) {
      const st = this.#st;
      if (st.closeRequested || st.state !== 'readable') throw new TypeError('the stream is closed or closing; it takes no more chunks');
      const req = st.reader && st.reader.requests.shift();
      if (req) req.resolve({ value: chunk, done: false });
      else st.queue.push(chunk);
      st.pull();
    }
    close() {
      const st = this.#st;
      if (st.closeRequested || st.state !== 'readable') throw new TypeError('the stream is already closed or closing');
      st.closeRequested = true;
      if (st.queue.length === 0) st.finish();
    }
    error(e) { this.#st.fail(e); }
  }
  class ReadableStream {
    constructor(source = {}, strategy = {}) {
      if (source === null || typeof source !== 'object') source = {};
      const st = {
        state: 'readable', queue: [], error: undefined, reader: null, started: false, pulling: false,
        pullAgain: false, closeRequested: false, disturbed: false, source,
        hwm: strategy.highWaterMark === undefined ? 1 : Number(strategy.highWaterMark),
      };
      st.finish = () => {
        if (st.state !== 'readable') return;
        st.state = 'closed';
        if (st.reader) {
          for (const r of st.reader.requests.splice(0)) r.resolve({ value: undefined, done: true });
          st.reader.closedResolve();
        }
      };
      st.fail = (e) => {
        if (st.state !== 'readable') return;
        st.state = 'errored';
        st.error = e;
        st.queue = [];
        if (st.reader) {
          for (const r of st.reader.requests.splice(0)) r.reject(e);
          st.reader.closedReject(e);
        }
      };
      st.pull = () => {
        if (!st.started || st.state !== 'readable' || st.closeRequested || typeof source.pull !== 'function') return;
        const wanted = (st.reader && st.reader.requests.length > 0) || st.hwm - st.queue.length > 0;
        if (!wanted) return;
        if (st.pulling) { st.pullAgain = true; return; }
        st.pulling = true;
        let result;
        try { result = source.pull(st.controller); } catch (e) { st.fail(e); return; }
        resolved(result).then(() => {
          st.pulling = false;
          if (st.pullAgain) { st.pullAgain = false; st.pull(); }
        }, (e) => st.fail(e));
      };
      st.controller = new ReadableStreamDefaultController(st);
      this[kStream] = st;
      // What start() throws, the constructor throws (as the standard says).
      const started = typeof source.start === 'function' ? source.start(st.controller) : undefined;
      resolved(started).then(() => { st.started = true; st.pull(); }, (e) => st.fail(e));
    }
    get locked() { return this[kStream].reader !== null; }
    cancel(reason) {
      if (this.locked) return Promise.reject(new TypeError('the stream is locked to a reader'));
      return cancelStream(this[kStream], reason);
    }
    getReader(options = {}) {
      if (options && options.mode === 'byob') throw new TypeError('dobj: BYOB readers are not supported');
      return new ReadableStreamDefaultReader(this);
    }
    tee() {
      const reader = this.getReader();
      let c1, c2, canceled1 = false, canceled2 = false, reading = false;
      const pull = () => {
        if (reading) return;
        reading = true;
        return reader.read().then(({ value, done }) => {
          reading = false;
          if (done) { if (!canceled1) c1.close(); if (!canceled2) c2.close(); return; }
          if (!canceled1) c1.enqueue(value);
          if (!canceled2) c2.enqueue(value);
        }, (e) => { c1.error(e); c2.error(e); });
      };
      const both = (first) => ({
        start(c) { if (first) c1 = c; else c2 = c; },
        pull,
        cancel(reason) {
          if (first) canceled1 = true; else canceled2 = true;
          if (canceled1 && canceled2) return reader.cancel(reason);
        },
      });
      return [new ReadableStream(both(true)), new ReadableStream(both(false))];
    }
    async pipeTo(dest, options = {}) {
      if (!(dest instanceof WritableStream)) throw new TypeError('pipeTo() needs a WritableStream');
      if (this.locked) throw new TypeError('the stream is locked to a reader');
      if (dest.locked) throw new TypeError('the destination is locked to a writer');
      const reader = this.getReader();
      const writer = dest.getWriter();
      const signal = options.signal;
      let abortWith = null;
      const onAbort = () => { abortWith = signal.reason === undefined ? new DOMException('aborted', 'AbortError') : signal.reason; };
      if (signal) { if (signal.aborted) onAbort(); else signal.addEventListener('abort', onAbort); }
      try {
        for (;;) {
          if (abortWith !== null) throw abortWith;
          let step;
          try { step = await reader.read(); } catch (e) {
            if (!options.preventAbort) await writer.abort(e).catch(() => {});
            throw e;
          }
          if (step.done) break;
          try { await writer.write(step.value); } catch (e) {
            if (!options.preventCancel) await reader.cancel(e).catch(() => {});
            throw e;
          }
        }
        if (!options.preventClose) await writer.close();
      } catch (e) {
        if (e === abortWith) {
          if (!options.preventAbort) await writer.abort(e).catch(() => {});
          if (!options.preventCancel) await reader.cancel(e).catch(() => {});
        }
        throw e;
      } finally {
        if (signal) signal.removeEventListener('abort', onAbort);
        reader.releaseLock();
        writer.releaseLock();
      }
    }
    pipeThrough(pair, options) {
      const done = this.pipeTo(pair.writable, options);
      done.catch(() => {});
      return pair.readable;
    }
    values(options = {}) {
      const reader = this.getReader();
      const keep = !!options.preventCancel;
      let released = false;
      const release = () => { if (!released) { released = true; reader.releaseLock(); } };
      return {
        // Done: the lock goes (the stream is closed, and no longer locked).
        next: () => (released ? resolved({ value: undefined, done: true })
          : reader.read().then((step) => { if (step.done) release(); return step; })),
        return: async (value) => {
          if (!released && !keep) await reader.cancel(value);
          release();
          return { value, done: true };
        },
        [Symbol.asyncIterator]() { return this; },
      };
    }
    [Symbol.asyncIterator](options) { return this.values(options); }
    static from(items) {
      const it = typeof items[Symbol.asyncIterator] === 'function' ? items[Symbol.asyncIterator]()
        : items[Symbol.iterator]();
      return new ReadableStream({
        async pull(c) {
          const { value, done } = await it.next();
          if (done) c.close(); else c.enqueue(value);
        },
        async cancel(reason) { if (typeof it.return === 'function') await it.return(reason); },
      }, { highWaterMark: 0 });
    }
    get [Symbol.toStringTag]() { return 'ReadableStream'; }
  }
  function cancelStream(st, reason) {
    st.disturbed = true;
    if (st.state === 'closed') return resolved(undefined);
    if (st.state === 'errored') return Promise.reject(st.error);
    st.queue = [];
    st.finish();
    const cancel = st.source.cancel;
    try {
      return resolved(typeof cancel === 'function' ? cancel.call(st.source, reason) : undefined).then(() => undefined);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  class ReadableStreamDefaultReader {
    #st;
    constructor(stream) {
      if (!(stream instanceof ReadableStream)) throw new TypeError('a reader needs a ReadableStream');
      const st = stream[kStream];
      if (st.reader) throw new TypeError('the stream is locked to another reader');
      this.#st = st;
      const lock = { requests: [] };
      lock.closed = new Promise((res, rej) => { lock.closedResolve = res; lock.closedReject = rej; });
      lock.closed.catch(() => {});
      st.reader = lock;
      if (st.state === 'closed') lock.closedResolve();
      else if (st.state === 'errored') lock.closedReject(st.error);
    }
    get closed() { return this.#st ? this.#st.reader.closed : Promise.reject(new TypeError('the reader was released')); }
    read() {
      const st = this.#st;
      if (!st) return Promise.reject(new TypeError('the reader was released'));
      st.disturbed = true;
      if (st.state === 'errored') return Promise.reject(st.error);
      if (st.queue.length > 0) {
        const value = st.queue.shift();
        if (st.closeRequested && st.queue.length === 0) st.finish();
        else st.pull();
        return resolved({ value, done: false });
      }
      if (st.state === 'closed') return resolved({ value: undefined, done: true });
      return new Promise((resolve, reject) => { st.reader.requests.push({ resolve, reject }); st.pull(); });
    }
    cancel(reason) {
      if (!this.#st) return Promise.reject(new TypeError('the reader was released'));
      return cancelStream(this.#st, reason);
    }
    releaseLock() {
      const st = this.#st;
      if (!st) return;
      const released = new TypeError('the reader was released');
      for (const r of st.reader.requests.splice(0)) r.reject(released);
      st.reader = null;
      this.#st = null;
    }
  }
  // All of a stream's bytes: strings as UTF-8, typed arrays and buffers as
  // they are (the body of a message).
  async function readAllBytes(stream) {
    const st = stream[kStream];
    const known = takeBytesSource(st);
    if (known) return known;
    if (st.reader) throw new TypeError('the body stream is locked to a reader');
    if (st.disturbed) throw new TypeError('the body stream was already read');
    const reader = stream.getReader();
    const chunks = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const bytes = chunkBytes(value);
      if (bytes === null) throw new TypeError('a body stream must give strings, ArrayBuffers or typed arrays');
      chunks.push(bytes);
    }
    reader.releaseLock();
    return concatBytes(chunks);
  }
  // The same at once when the stream has ended with all its chunks still
  // queued (a source that enqueued them in start()): null otherwise.
  function bytesNow(stream) {
    const st = stream[kStream];
    const known = takeBytesSource(st);
    if (known) return known;
    if (st.reader || st.disturbed || !st.closeRequested || st.state !== 'readable') return null;
    const chunks = st.queue.map(chunkBytes);
    if (chunks.includes(null)) return null;  // readAllBytes says why
    st.disturbed = true;
    st.queue = [];
    st.finish();
    return concatBytes(chunks);
  }
  // A body stream's chunk as bytes: a string as UTF-8, a buffer copied; null
  // for anything else.
  const chunkBytes = (value) => (typeof value === 'string' ? N.utf8Encode(value)
    : value instanceof ArrayBuffer || ArrayBuffer.isView(value) ? new Uint8Array(toBytes(value)) : null);
  // The bytes of a stream over bytes known in full (bytesStream), taken at
  // once if nothing read it yet; null otherwise.
  function takeBytesSource(st) {
    if (!st[kBytesSource] || st.disturbed || st.reader) return null;
    st.disturbed = true;
    return st[kBytesSource];
  }
  // A stream over bytes known in full (a body's).
  function bytesStream(bytes) {
    const s = new ReadableStream({ start(c) { if (bytes.length > 0) c.enqueue(bytes); c.close(); } });
    s[kStream][kBytesSource] = bytes;
    return s;
  }

  class WritableStreamDefaultController {
    #st;
    constructor(st) { this.#st = st; }
    error(e) { this.#st.fail(e); }
    get signal() { return this.#st.abort.signal; }
  }
  class WritableStream {
    constructor(sink = {}, strategy = {}) {
      if (sink === null || typeof sink !== 'object') sink = {};
      const st = {
        state: 'writable', queue: [], error: undefined, writer: null, busy: false, started: false,
        closing: null, abort: new AbortController(), hwm: strategy.highWaterMark === undefined ? 1 : Number(strategy.highWaterMark),
      };
      let closedResolve, closedReject;
      st.closed = new Promise((res, rej) => { closedResolve = res; closedReject = rej; });
      st.closed.catch(() => {});
      st.fail = (e) => {
        if (st.state === 'errored' || st.state === 'closed') return;
        st.state = 'errored';
        st.error = e;
        for (const w of st.queue.splice(0)) w.reject(e);
        if (st.closing) st.closing.reject(e);
        closedReject(e);
      };
      st.process = async () => {
        if (st.busy || !st.started) return;
        st.busy = true;
        while (st.state === 'writable' && st.queue.length > 0) {
          const w = st.queue.shift();
          try {
            if (typeof sink.write === 'function') await sink.write(w.chunk, st.controller);
            w.resolve();
          } catch (e) {
            w.reject(e);
            st.fail(e);
          }
        }
        if (st.state === 'writable' && st.closing) {
          try {
            if (typeof sink.close === 'function') await sink.close();
            st.state = 'closed';
            st.closing.resolve();
            closedResolve();
          } catch (e) {
            st.fail(e);
          }
        }
        st.busy = false;
      };
      st.write = (chunk) => {
        if (st.state === 'errored') return Promise.reject(st.error);
        if (st.closing || st.state === 'closed') return Promise.reject(new TypeError('the stream is closed or closing'));
        const p = new Promise((resolve, reject) => st.queue.push({ chunk, resolve, reject }));
        st.process();
        return p;
      };
      st.close = () => {
        if (st.state === 'errored') return Promise.reject(st.error);
        if (st.closing || st.state === 'closed') return Promise.reject(new TypeError('the stream is closed or closing'));
        const p = new Promise((resolve, reject) => { st.closing = { resolve, reject }; });
        st.process();
        return p;
      };
      st.abortWith = (reason) => {
        if (st.state === 'closed' || st.state === 'errored') return resolved(undefined);
        st.abort.abort(reason);
        st.fail(reason);
        return resolved(typeof sink.abort === 'function' ? sink.abort(reason) : undefined).then(() => undefined);
      };
      st.controller = new WritableStreamDefaultController(st);
      this[kStream] = st;
      const started = typeof sink.start === 'function' ? sink.start(st.controller) : undefined;
      resolved(started).then(() => { st.started = true; st.process(); }, (e) => st.fail(e));
    }
    get locked() { return this[kStream].writer !== null; }
    getWriter() { return new WritableStreamDefaultWriter(this); }
    abort(reason) {
      if (this.locked) return Promise.reject(new TypeError('the stream is locked to a writer'));
      return this[kStream].abortWith(reason);
    }
    close() {
      if (this.locked) return Promise.reject(new TypeError('the stream is locked to a writer'));
      return this[kStream].close();
    }
    get [Symbol.toStringTag]() { return 'WritableStream'; }
  }
  class WritableStreamDefaultWriter {
    #st;
    constructor(stream) {
      if (!(stream instanceof WritableStream)) throw new TypeError('a writer needs a WritableStream');
      const st = stream[kStream];
      if (st.writer) throw new TypeError('the stream is locked to another writer');
      st.writer = this;
      this.#st = st;
    }
    #held() { if (!this.#st) throw new TypeError('the writer was released'); return this.#st; }
    get closed() { return this.#st ? this.#st.closed : Promise.reject(new TypeError('the writer was released')); }
    get ready() { return resolved(undefined); }
    get desiredSize() {
      const st = this.#held();
      return st.state === 'errored' ? null : st.state === 'closed' ? 0 : st.hwm - st.queue.length;
    }
    write(chunk) { try { return this.#held().write(chunk); } catch (e) { return Promise.reject(e); } }
    close() { try { return this.#held().close(); } catch (e) { return Promise.reject(e); } }
    abort(reason) { try { return this.#held().abortWith(reason); } catch (e) { return Promise.reject(e); } }
    releaseLock() { if (this.#st) { this.#st.writer = null; this.#st = null; } }
  }
  class TransformStream {
    #readable; #writable;
    constructor(transformer = {}, writableStrategy = {}, readableStrategy = {}) {
      if (transformer === null || typeof transformer !== 'object') transformer = {};
      let rc;
      this.#readable = new ReadableStream({
        start(c) { rc = c; },
        cancel: (reason) => { this.#writable[kStream].fail(reason); },
      }, readableStrategy);
      const controller = {
        enqueue: (chunk) => rc.enqueue(chunk),
        error: (e) => { rc.error(e); this.#writable[kStream].fail(e); },
        terminate: () => { try { rc.close(); } catch {} this.#writable[kStream].fail(new TypeError('the transform stream was terminated')); },
        get desiredSize() { return rc.desiredSize; },
      };
      const started = resolved(typeof transformer.start === 'function' ? transformer.start(controller) : undefined);
      this.#writable = new WritableStream({
        async start() { await started; },
        async write(chunk) {
          if (typeof transformer.transform === 'function') await transformer.transform(chunk, controller);
          else controller.enqueue(chunk);
        },
        async close() {
          if (typeof transformer.flush === 'function') await transformer.flush(controller);
          try { rc.close(); } catch {}
        },
        abort(reason) { rc.error(reason); },
      }, writableStrategy);
    }
    get readable() { return this.#readable; }
    get writable() { return this.#writable; }
    get [Symbol.toStringTag]() { return 'TransformStream'; }
  }
  // UTF-8 text to bytes and back, chunk by chunk (a character split between
  // two chunks is decoded whole).
  class TextEncoderStream extends TransformStream {
    constructor() { super({ transform(chunk, c) { const b = N.utf8Encode(String(chunk)); if (b.length) c.enqueue(b); } }); }
    get encoding() { return 'utf-8'; }
  }
  class TextDecoderStream extends TransformStream {
    constructor(label = 'utf-8', options = {}) {
      const decoder = new TextDecoder(label, options);
      let carry = new Uint8Array(0);
      super({
        transform(chunk, c) {
          const b = concatBytes([carry, new Uint8Array(toBytes(chunk))]);
          // Keep back an incomplete sequence at the end.
          let keep = 0;
          for (let i = b.length - 1; i >= 0 && i >= b.length - 4; --i) {
            const x = b[i];
            if ((x & 0xc0) === 0x80) continue;  // a continuation byte
            const need = x >= 0xf0 ? 4 : x >= 0xe0 ? 3 : x >= 0xc0 ? 2 : 1;
            if (b.length - i < need) keep = b.length - i;
            break;
          }
          carry = b.slice(b.length - keep);
          const text = decoder.decode(b.subarray(0, b.length - keep));
          if (text.length) c.enqueue(text);
        },
        flush(c) { if (carry.length) c.enqueue(decoder.decode(carry)); },
      });
      this.fatal = decoder.fatal;
    }
    get encoding() { return 'utf-8'; }
  }
  define('ReadableStream', ReadableStream);
  define('ReadableStreamDefaultReader', ReadableStreamDefaultReader);
  define('ReadableStreamDefaultController', ReadableStreamDefaultController);
  define('WritableStream', WritableStream);
  define('WritableStreamDefaultWriter', WritableStreamDefaultWriter);
  define('WritableStreamDefaultController', WritableStreamDefaultController);
  define('TransformStream', TransformStream);
  define('TextEncoderStream', TextEncoderStream);
  define('TextDecoderStream', TextDecoderStream);
  define('CountQueuingStrategy', class CountQueuingStrategy {
    constructor({ highWaterMark }) { this.highWaterMark = highWaterMark; }
    size() { return 1; }
  });
  define('ByteLengthQueuingStrategy', class ByteLengthQueuingStrategy {
    constructor({ highWaterMark }) { this.highWaterMark = highWaterMark; }
    size(chunk) { return chunk.byteLength; }
  });

  // ---- Blob, File, FormData ------------------------------------------------
  function concatBytes(chunks) {
    let n = 0;
    for (const c of chunks) n += c.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  }
  class Blob {
    #bytes; #type;
    constructor(parts = [], options = {}) {
      if (typeof parts !== 'object' || parts === null || typeof parts[Symbol.iterator] !== 'function') {
        throw new TypeError("Failed to construct 'Blob': the parts must be a sequence");
      }
      const chunks = [];
      for (const p of parts) {
        if (p instanceof Blob) chunks.push(p.#bytes);
        else if (p instanceof ArrayBuffer || ArrayBuffer.isView(p)) chunks.push(new Uint8Array(toBytes(p)));  // a copy
        else chunks.push(N.utf8Encode(String(p)));
      }
      this.#bytes = concatBytes(chunks);
      const type = options.type === undefined ? '' : String(options.type);
      this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : '';
    }
    get size() { return this.#bytes.length; }
    get type() { return this.#type; }
    slice(start = 0, end = this.#bytes.length, type = '') {
      const n = this.#bytes.length;
      const at = (x) => (x < 0 ? Math.max(n + x, 0) : Math.min(x, n));
      return new Blob([this.#bytes.subarray(at(Math.trunc(start)), Math.max(at(Math.trunc(end)), at(Math.trunc(start))))], { type });
    }
    async text() { return N.utf8Decode(this.#bytes, false); }
    async arrayBuffer() { return this.#bytes.slice().buffer; }
    async bytes() { return this.#bytes.slice(); }
    stream() { return bytesStream(this.#bytes.slice()); }
    get [Symbol.toStringTag]() { return 'Blob'; }
    static _bytes(b) { return b.#bytes; }
  }
  class File extends Blob {
    #name; #lastModified;
    constructor(parts, name, options = {}) {
      super(parts, options);
      if (name === undefined) throw new TypeError("Failed to construct 'File': 2 arguments required");
      this.#name = String(name);
      this.#lastModified = options.lastModified === undefined ? Date.now() : Number(options.lastModified);
    }
    get name() { return this.#name; }
    get lastModified() { return this.#lastModified; }
    get [Symbol.toStringTag]() { return 'File'; }
  }
  define('Blob', Blob);
  define('File', File);

  class FormData {
    #list = [];
    constructor(form) {
      if (form !== undefined) throw new TypeError('FormData: there are no form elements in a Worker');
    }
    static #entry(name, value, filename) {
      if (value instanceof Blob) {
        if (!(value instanceof File) || filename !== undefined) {
          const fileName = filename !== undefined ? String(filename) : value instanceof File ? value.name : 'blob';
          value = new File([value], fileName, { type: value.type, lastModified: value.lastModified });
        }
        return [String(name), value];
      }
      if (filename !== undefined) throw new TypeError('FormData: a file name goes with a Blob value only');
      return [String(name), String(value)];
    }
    append(name, value, filename) { this.#list.push(FormData.#entry(name, value, filename)); }
    set(name, value, filename) {
      const entry = FormData.#entry(name, value, filename);
      const i = this.#list.findIndex(([n]) => n === entry[0]);
      if (i < 0) { this.#list.push(entry); return; }
      this.#list[i] = entry;
      this.#list = this.#list.filter(([n], j) => j <= i || n !== entry[0]);
    }
    get(name) { const e = this.#list.find(([n]) => n === String(name)); return e ? e[1] : null; }
    getAll(name) { return this.#list.filter(([n]) => n === String(name)).map(([, v]) => v); }
    has(name) { return this.#list.some(([n]) => n === String(name)); }
    delete(name) { this.#list = this.#list.filter(([n]) => n !== String(name)); }
    *entries() { for (const [n, v] of this.#list) yield [n, v]; }
    *keys() { for (const [n] of this.#list) yield n; }
    *values() { for (const [, v] of this.#list) yield v; }
    forEach(fn, self) { for (const [n, v] of this.#list) fn.call(self, v, n, this); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'FormData'; }
  }
  define('FormData', FormData);

  // multipart/form-data (RFC 7578), as browsers and workerd write it.
  const formName = (s) => s.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22');
  function multipart(form) {
    const random = new Uint8Array(12);
    N.randomFill(random);
    const boundary = '----dobjFormBoundary' + Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('');
    const chunks = [];
    const text = (s) => chunks.push(N.utf8Encode(s));
    for (const [name, value] of form) {
      text(`--${boundary}\r\nContent-Disposition: form-data; name="${formName(name)}"`);
      if (typeof value === 'string') {
        text(`\r\n\r\n${value.replace(/\r?\n|\r(?!\n)/g, '\r\n')}\r\n`);
      } else {
        text(`; filename="${formName(value.name)}"\r\nContent-Type: ${value.type || 'application/octet-stream'}\r\n\r\n`);
        chunks.push(Blob._bytes(value));
        text('\r\n');
      }
    }
    text(`--${boundary}--\r\n`);
    return [concatBytes(chunks), `multipart/form-data; boundary=${boundary}`];
  }
  // Bytes as a string of one character per byte (and back): the parser below
  // finds boundaries and headers with string methods.
  function latin1(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return s;
  }
  function unlatin1(s) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; ++i) out[i] = s.charCodeAt(i);
    return out;
  }
  function parameter(header, key) {
    const m = new RegExp(`;\\s*${key}\\*?=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(header);
    return m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]) : null;
  }
  function parseMultipart(bytes, contentType) {
    const boundary = parameter(contentType, 'boundary');
    const bad = () => new TypeError('Could not parse content as FormData: malformed multipart/form-data');
    if (!boundary) throw bad();
    const all = latin1(bytes);
    const delimiter = `--${boundary}`;
    const form = new FormData();
    let at = all.indexOf(delimiter);
    if (at < 0) throw bad();
    for (;;) {
      at += delimiter.length;
      if (all.startsWith('--', at)) return form;  // the close delimiter
      if (!all.startsWith('\r\n', at)) throw bad();
      const next = all.indexOf(`\r\n${delimiter}`, at);
      if (next < 0) throw bad();
      const part = all.slice(at + 2, next);
      const split = part.indexOf('\r\n\r\n');
      if (split < 0) throw bad();
      const headers = N.utf8Decode(unlatin1(part.slice(0, split)), false).split('\r\n');
      const content = part.slice(split + 4);
      let disposition = null, type = null;
      for (const h of headers) {
        const colon = h.indexOf(':');
        if (colon < 0) continue;
        const key = h.slice(0, colon).trim().toLowerCase();
        if (key === 'content-disposition') disposition = h.slice(colon + 1).trim();
        else if (key === 'content-type') type = h.slice(colon + 1).trim();
      }
      const name = disposition && /^form-data/i.test(disposition) ? parameter(disposition, 'name') : null;
      if (name === null) throw bad();
      const filename = parameter(disposition, 'filename');
      if (filename !== null) form.append(name, new File([unlatin1(content)], filename, { type: type || 'text/plain' }));
      else form.append(name, N.utf8Decode(unlatin1(content), false));
      at = next + 2;
    }
  }

  // A body is kept whole: a string or a Uint8Array (dobj reads and writes
  // bodies whole), or a stream until it is read. extractBody sets a
  // message's body from what was given, and returns the content type the
  // Fetch standard gives a body of its kind (null: none).
  function extractBody(msg, body) {
    if (body === undefined || body === null) { msg[kBody] = null; return null; }
    if (typeof body === 'string') { msg[kBody] = body; return 'text/plain;charset=UTF-8'; }
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) { msg[kBody] = new Uint8Array(toBytes(body)); return null; }
    if (body instanceof URLSearchParams) { msg[kBody] = body.toString(); return 'application/x-www-form-urlencoded;charset=UTF-8'; }
    if (body instanceof Blob) { msg[kBody] = Blob._bytes(body).slice(); return body.type || null; }
    if (body instanceof FormData) { const [bytes, type] = multipart(body); msg[kBody] = bytes; return type; }
    if (body instanceof ReadableStream) {
      if (body.locked || body[kStream].disturbed) throw new TypeError('the body stream is locked or was already read');
      msg[kBody] = body;
      return null;
    }
    throw new TypeError('a body must be a string, an ArrayBuffer, a typed array, a Blob, FormData, URLSearchParams or a ReadableStream');
  }
  // A body the runtime can send as it is (no stream to read first).
  const isWhole = (b) => b === null || typeof b === 'string' || b instanceof Uint8Array;
  // A message's body whole, for the runtime: a stream is read to its end.
  const wholeBody = (b) => {
    if (b === kUsed) throw usedBody();
    return b instanceof ReadableStream ? readAllBytes(b) : b;
  };
  // The body of a message's clone: bytes are shared; a stream is split in
  // two (tee), one half staying with the message.
  function splitBody(msg) {
    const b = msg[kBody];
    if (!(b instanceof ReadableStream)) return b;
    if (msg.bodyUsed || b.locked) throw new TypeError('Body has already been used');
    const st = b[kStream];
    if (st[kBytesSource]) { msg[kBody] = st[kBytesSource]; return st[kBytesSource]; }
    const [mine, theirs] = b.tee();
    msg[kBody] = mine;
    return theirs;
  }
  const kBody = Symbol('body');
  const kUsed = Symbol('used');  // the body of a message whose body was read whole
  const usedBody = () => new TypeError('Body has already been used');
  class Body {
    [kBody] = null;
    get bodyUsed() {
      const b = this[kBody];
      return b === kUsed || (b instanceof ReadableStream && b[kStream].disturbed);
    }
    // The whole body, once: a string, bytes or null.
    #take() {
      if (this.bodyUsed) throw usedBody();
      const b = this[kBody];
      if (b !== null) this[kBody] = kUsed;
      return wholeBody(b);
    }
    get body() {
      const b = this[kBody];
      if (b === null || b instanceof ReadableStream) return b;
      // A stream over the bytes, made when asked for; the body is the stream
      // from then on (read from it, or passed on whole).
      const stream = bytesStream(b === kUsed ? new Uint8Array(0) : N.bytesOf(b));
      if (b === kUsed) stream[kStream].disturbed = true;
      this[kBody] = stream;
      return stream;
    }
    async text() { const b = await this.#take(); return b === null ? '' : typeof b === 'string' ? b : N.utf8Decode(b, false); }
    async json() { return JSON.parse(await this.text()); }
    async arrayBuffer() { const b = await this.#take(); return b === null ? new ArrayBuffer(0) : N.bytesOf(b).slice().buffer; }
    async bytes() { return new Uint8Array(await this.arrayBuffer()); }
    async formData() {
      const type = this.headers.get('content-type') || '';
      if (/^multipart\/form-data/i.test(type)) {
        const b = await this.#take();
        return parseMultipart(b === null ? new Uint8Array(0) : N.bytesOf(b), type);
      }
      if (/^application\/x-www-form-urlencoded/i.test(type)) {
        const form = new FormData();
        for (const [k, v] of new URLSearchParams(await this.text())) form.append(k, v);
        return form;
      }
      throw new TypeError(`Could not parse content as FormData: the content type is ${type ? `"${type}"` : 'missing'}`);
    }
    async blob() {
      const b = await this.#take();
      return new Blob(b === null ? [] : [N.bytesOf(b)], { type: this.headers.get('content-type') || '' });
    }
  }
  const kTrusted = Symbol('trusted');
  const kNeverAborted = new AbortSignal();  // the signal of every request from a client
  class Request extends Body {
    #url;
    constructor(input, init = {}) {
      super();
      if (input === kTrusted) {  // from the runtime: already checked, nothing to parse
        this.#url = init.url;
        this.method = init.method;
        this.headers = Headers._fromFlat(init.flat);
        this[kBody] = init.body;
        this.signal = kNeverAborted;
        this.redirect = 'follow';
        this.cf = undefined;
        return;
      }
      let src = input instanceof Request ? input : null;
      if (src && !('body' in init) && src[kBody] === kUsed) throw usedBody();
      this.#url = src ? src.url : new URL(String(input)).href;
      this.method = String(init.method || (src ? src.method : 'GET')).toUpperCase();
      this.headers = new Headers(init.headers || (src ? src.headers : undefined));
      const body = 'body' in init ? init.body : src ? src[kBody] : null;
      if (body !== null && body !== undefined && (this.method === 'GET' || this.method === 'HEAD')) {
        throw new TypeError('Request with GET/HEAD method cannot have body.');
      }
      let type = null;
      if ('body' in init) type = extractBody(this, body);
      else this[kBody] = src ? src[kBody] : null;
      // A body from init is extracted (a string's gets text/plain, a form's
      // its multipart type); one taken from the input Request comes as it
      // is, with that request's headers.
      if (type !== null && !this.headers.has('content-type')) this.headers.set('content-type', type);
      this.signal = init.signal || (src ? src.signal : new AbortSignal());
      this.redirect = init.redirect || 'follow';
      this.cf = init.cf || (src ? src.cf : undefined);
    }
    get url() { return this.#url; }
    clone() {
      const body = splitBody(this);
      const r = new Request(this);
      r[kBody] = body;
      return r;
    }
  }
  define('Request', Request);
  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      this.status = init.status === undefined ? 200 : Number(init.status);
      if (this.status !== 101 && (this.status < 200 || this.status > 599)) throw new RangeError(`Invalid status ${this.status}`);
      this.statusText = init.statusText || '';
      const type = extractBody(this, body);
      if (init.headers === undefined) {
        this.headers = Headers._fromFlat(type === null ? [] : ['content-type', type]);
      } else {
        this.headers = new Headers(init.headers);
        if (type !== null && !this.headers.has('content-type')) this.headers.set('content-type', type);
      }
      this.webSocket = init.webSocket || null;
    }
    static _make(status, flat, body) {
      const r = new Response(null);
      r.status = status;
      r.headers = Headers._fromFlat(flat);
      r[kBody] = body;
      return r;
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    get redirected() { return false; }
    get url() { return ''; }
    clone() {
      // The same status, headers and body, as they are (a string body gets no
      // content type added, as a new Response would give it).
      const r = Response._make(this.status, this.headers._flat().slice(), splitBody(this));
      r.statusText = this.statusText;
      r.webSocket = this.webSocket;
      return r;
    }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(JSON.stringify(data), { ...init, headers });
    }
    static redirect(url, status = 302) { return new Response(null, { status, headers: { location: String(url) } }); }
    static error() { const r = new Response(null, { status: 200 }); r.status = 0; return r; }
  }
  define('Response', Response);


  // ---- WebSockets ---------------------------------------------------------------
  // A WebSocket is one end of a WebSocketPair until the object's fetch()
  // returns the 101 that carries its peer; then the runtime binds it to the
  // connection (#h). What the object does before that (send, close, an
  // attachment) waits and happens at the bind. Sockets of a hibernated object
  // come back bound, from getWebSockets() and the handlers.
  const kInternal = Symbol('internal');
  let wsInternals;
  class MessageEvent extends Event { constructor(type, init = {}) { super(type); this.data = init.data; } }
  class CloseEvent extends Event {
    constructor(type, init = {}) { super(type); this.code = init.code ?? 0; this.reason = init.reason ?? ''; this.wasClean = !!init.wasClean; }
  }
  class ErrorEvent extends Event { constructor(type, init = {}) { super(type); this.error = init.error; this.message = init.message ?? ''; } }
  define('MessageEvent', MessageEvent);
  define('CloseEvent', CloseEvent);
  define('ErrorEvent', ErrorEvent);
  class WebSocket extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    #h = null;
    #peer = null;
    #accepted = null;  // { hibernate, tags }
    #upgrade = null;   // a socket accepted elsewhere (the 101 of a stub's fetch)
    #queue = null;  // what was done before the bind: [kind, a, b]
    #attachment = undefined;
    #closed = false;
    constructor(token) {
      super();
      if (token !== kInternal) throw new TypeError('dobj: outgoing WebSockets (new WebSocket(url)) are not supported');
    }
    static {
      wsInternals = {
        make: () => new WebSocket(kInternal),
        pair(a, b) { a.#peer = b; b.#peer = a; },
        bound(h) { const ws = new WebSocket(kInternal); ws.#h = h; return ws; },
        upgrade(box) { const ws = new WebSocket(kInternal); ws.#upgrade = box; return ws; },
        upgradeOf: (ws) => ws.#upgrade,
        handle: (ws) => (ws instanceof WebSocket ? ws.#h : null),
        peer: (ws) => ws.#peer,
        accepted: (ws) => ws.#accepted,
        accept(ws, hibernate, tags) {
          if (ws.#h || ws.#upgrade || !ws.#peer) throw new TypeError('this WebSocket cannot be accepted: use the server end of a new WebSocketPair');
          if (ws.#accepted) throw new TypeError('this WebSocket was already accepted');
          ws.#accepted = { hibernate, tags };
        },
        bind(ws, h) {
          ws.#h = h;
          if (ws.#attachment !== undefined) N.wsSetAttachment(h, ws.#attachment);
          for (const [kind, a, b] of ws.#queue || []) { if (kind === 'send') N.wsSend(h, a); else N.wsClose(h, a, b); }
          ws.#queue = null;
        },
      };
    }
    accept() { wsInternals.accept(this, false, []); }
    get readyState() { return this.#h ? N.wsReadyState(this.#h) : this.#closed ? 3 : 1; }
    get url() { return null; }
    get protocol() { return ''; }
    get extensions() { return ''; }
    send(data) {
      if (typeof data !== 'string') data = toBytes(data);
      if (this.#h) N.wsSend(this.#h, data);
      else if (this.#accepted && !this.#closed) (this.#queue ??= []).push(['send', data]);
      else throw new TypeError('WebSocket send() before accept');
    }
    close(code, reason) {
      if (this.#h) { N.wsClose(this.#h, code === undefined ? 1000 : Number(code), reason === undefined ? '' : String(reason)); return; }
      this.#closed = true;
      (this.#queue ??= []).push(['close', code === undefined ? 1000 : Number(code), reason === undefined ? '' : String(reason)]);
    }
    serializeAttachment(value) {
      if (this.#h) N.wsSetAttachment(this.#h, value);
      else this.#attachment = structuredClone(value);
    }
    deserializeAttachment() {
      if (this.#h) return N.wsGetAttachment(this.#h);
      return this.#attachment === undefined ? null : structuredClone(this.#attachment);
    }
  }
  define('WebSocket', WebSocket);
  class WebSocketPair {
    constructor() {
      const client = wsInternals.make();
      const server = wsInternals.make();
      wsInternals.pair(client, server);
      this[0] = client;
      this[1] = server;
    }
  }
  define('WebSocketPair', WebSocketPair);
  class WebSocketRequestResponsePair {
    #request; #response;
    constructor(request, response) { this.#request = String(request); this.#response = String(response); }
    get request() { return this.#request; }
    get response() { return this.#response; }
  }
  define('WebSocketRequestResponsePair', WebSocketRequestResponsePair);

  // ---- Outgoing fetch ---------------------------------------------------------
  define('fetch', async (input, init) => {
    const req = new Request(input, init);
    const sent = isWhole(req[kBody]) ? req[kBody] : await wholeBody(req[kBody]);
    const [status, flat, body] = await N.httpFetch(req.url, req.method, req.headers._flat(), sent);
    return makeResponse(status, flat, body);
  });
  function makeResponse(status, flat, body, upgrade) {
    const r = Response._make(status, flat, body);
    if (upgrade) r.webSocket = wsInternals.upgrade(upgrade);
    return r;
  }

  // ---- Durable Objects ------------------------------------------------------
  class DurableObjectId {
    #hex; #name;
    constructor(hex, name) { this.#hex = hex; this.#name = name; }
    toString() { return this.#hex; }
    equals(other) { return other instanceof DurableObjectId && other.#hex === this.#hex; }
    get name() { return this.#name; }
    toJSON() { return this.#hex; }
  }
  const kCall = Symbol('call');
  class DurableObjectStub {
    #ns; #id; #handle;
    [kCall](method, args) { return N.stubCall(this.#handle, this.#ns, method, args); }
    constructor(ns, id) { this.#ns = ns; this.#id = id; this.#handle = N.makeStub(ns, id.toString(), id.name); }
    get id() { return this.#id; }
    get name() { return this.#id.name; }
    async fetch(input, init) {
      const req = input instanceof Request && init === undefined ? input : new Request(input instanceof Request || /^[a-z][a-z0-9+.-]*:/i.test(String(input)) ? input : new URL(String(input), 'http://do/'), init);
      const sent = isWhole(req[kBody]) ? req[kBody] : await wholeBody(req[kBody]);
      const [status, flat, body, upgrade] = await N.stubFetch(this.#handle, req.method, req.url, req.headers._flat(), sent);
      return makeResponse(status, flat, body, upgrade);
    }
  }
  // A stub also answers JS RPC: any other property is a method of the
  // object, called with structured-clone arguments (await stub.add(5)). The
  // stub's own members are found first; only other names reach the Proxy at
  // the end of its prototype chain.
  Object.setPrototypeOf(DurableObjectStub.prototype, new Proxy(Object.create(null), {
    get(_, prop, receiver) {
      if (typeof prop === 'symbol' || prop === 'then' || prop === 'toJSON') return undefined;
      return (...args) => receiver[kCall](String(prop), args);
    },
  }));
  class DurableObjectNamespace {
    #binding;
    constructor(binding) { this.#binding = binding; }
    idFromName(name) { return new DurableObjectId(N.idFromName(this.#binding, String(name)), String(name)); }
    idFromString(hex) { return new DurableObjectId(N.idFromString(this.#binding, String(hex)), undefined); }
    newUniqueId() { return new DurableObjectId(N.newUniqueId(this.#binding), undefined); }
    get(id) {
      if (!(id instanceof DurableObjectId)) throw new TypeError('get() expects a DurableObjectId');
      return new DurableObjectStub(this.#binding, id);
    }
    getByName(name) { return this.get(this.idFromName(name)); }
    jurisdiction() { return this; }
  }

  const listOptions = (o = {}) => {
    const out = {};
    for (const k of ['start', 'startAfter', 'end', 'prefix']) if (o[k] !== undefined) out[k] = String(o[k]);
    if (o.reverse) out.reverse = true;
    if (o.limit !== undefined) out.limit = Number(o.limit);
    return out;
  };
  class SqlCursor {
    #columns; #rows; #i = 0;
    constructor(columns, rows, read, written) {
      this.#columns = columns; this.#rows = rows; this.rowsRead = read; this.rowsWritten = written;
    }
    get columnNames() { return [...this.#columns]; }
    #object(row) { const o = {}; this.#columns.forEach((c, j) => { o[c] = row[j]; }); return o; }
    next() { return this.#i < this.#rows.length ? { done: false, value: this.#object(this.#rows[this.#i++]) } : { done: true, value: undefined }; }
    [Symbol.iterator]() { return this; }
    toArray() { const out = []; for (const r of this) out.push(r); return out; }
    one() {
      const rest = this.#rows.length - this.#i;
      if (rest !== 1) throw new Error(rest === 0 ? 'Expected exactly one result from SQL query, but got no results.' : 'Expected exactly one result from SQL query, but got multiple results.');
      return this.next().value;
    }
    raw() {
      const rows = this.#rows; let i = this.#i; this.#i = rows.length;
      const it = { next: () => (i < rows.length ? { done: false, value: [...rows[i++]] } : { done: true, value: undefined }), [Symbol.iterator]() { return it; }, toArray: () => { const out = []; for (const r of it) out.push(r); return out; }, columnNames: this.columnNames };
      return it;
    }
  }
  class SqlStorage {
    #h;
    constructor(h) { this.#h = h; }
    exec(query, ...bindings) { const [c, rows, r, w] = N.sqlExec(this.#h, String(query), bindings); return new SqlCursor(c, rows, r, w); }
    get databaseSize() { return N.sqlSize(this.#h); }
  }
  // ctx.storage.kv: the synchronous key-value API of SQLite-backed objects,
  // over the same keys as get/put/delete/list (list yields [key, value]).
  class SyncKvStorage {
    #h;
    constructor(h) { this.#h = h; }
    get(key) { return N.get(this.#h, String(key)); }
    put(key, value) {
      if (value === undefined) throw new TypeError('put() needs a value');
      N.put(this.#h, String(key), value);
    }
    delete(key) { return N.delete(this.#h, String(key)); }
    list(options) { return N.list(this.#h, listOptions(options)).entries(); }
  }
  class DurableObjectStorage {
    #h; #sql; #kv = null;
    constructor(h) { this.#h = h; this.#sql = new SqlStorage(h); }
    get sql() { return this.#sql; }
    get kv() { return this.#kv ??= new SyncKvStorage(this.#h); }
    async get(keys) { return this.getSync(keys); }
    getSync(keys) { return Array.isArray(keys) ? N.getMany(this.#h, keys.map(String)) : N.get(this.#h, String(keys)); }
    async put(key, value) {
      if (typeof key === 'object' && key !== null) { N.putMany(this.#h, key); return; }
      if (value === undefined) throw new TypeError('put() needs a value');
      N.put(this.#h, String(key), value);
    }
    async delete(keys) { return Array.isArray(keys) ? N.deleteMany(this.#h, keys.map(String)) : N.delete(this.#h, String(keys)); }
    async list(options) { return N.list(this.#h, listOptions(options)); }
    async deleteAll() { N.deleteAll(this.#h); }
    async getAlarm() { return N.getAlarm(this.#h); }
    async setAlarm(t) { N.setAlarm(this.#h, t instanceof Date ? t.getTime() : Number(t)); }
    async deleteAlarm() { N.deleteAlarm(this.#h); }
    async sync() { await N.sync(this.#h); }
    getCurrentBookmark() { return N.getCurrentBookmark(this.#h); }
    async getBookmarkForTime(t) { return N.getBookmarkForTime(this.#h, t instanceof Date ? t.getTime() : Number(t)); }
    onNextSessionRestoreBookmark(b) { return N.onNextSessionRestoreBookmark(this.#h, String(b)); }
    snapshot() { return N.snapshot(this.#h); }
    transactionSync(fn) { return N.transactionSync(this.#h, fn); }
    // A transaction is one stretch of the object's code: its callback may
    // await storage (which never waits), but if it awaits anything outside
    // the object the runtime rolls it back when the turn ends (docs/js.md),
    // and what the callback does after that throws.
    async transaction(fn) {
      let rolledBack = false;
      const t = N.txBegin(this.#h);
      const live = (f) => (...a) => { N.txCheck(this.#h, t); return f(...a); };
      const txn = {
        get: live((k) => this.get(k)), put: live((k, v) => this.put(k, v)), delete: live((k) => this.delete(k)),
        list: live((o) => this.list(o)), getAlarm: live(() => this.getAlarm()), setAlarm: live((at) => this.setAlarm(at)),
        deleteAlarm: live(() => this.deleteAlarm()), rollback: () => { rolledBack = true; },
      };
      let result;
      try { result = await fn(txn); } catch (e) { N.txEnd(this.#h, t, false); throw e; }
      N.txEnd(this.#h, t, !rolledBack);
      return result;
    }
  }
  class DurableObjectState {
    #h;
    constructor(h, hex, name) {
      this.#h = h;
      this.id = new DurableObjectId(hex, name);
      this.storage = new DurableObjectStorage(h);
    }
    waitUntil(p) { Promise.resolve(p).catch((e) => console.error('waitUntil:', e)); }
    blockConcurrencyWhile(fn) { return N.blockConcurrencyWhile(this.#h, fn); }
    onNextSessionRestore(snapshot) { return N.onNextSessionRestore(this.#h, String(snapshot)); }
    abort(reason) { N.abort(this.#h, reason === undefined ? 'aborted' : String(reason)); }
    acceptWebSocket(ws, tags = []) {
      if (!(ws instanceof WebSocket)) throw new TypeError('acceptWebSocket() expects a WebSocket');
      tags = [...tags].map(String);
      if (tags.length > 10) throw new RangeError('a WebSocket may have at most 10 tags');
      for (const t of tags) if (t.length > 256) throw new RangeError('a WebSocket tag may be at most 256 characters');
      wsInternals.accept(ws, true, tags);
    }
    getWebSockets(tag) { return N.getWebSockets(this.#h, tag === undefined ? '' : String(tag)); }
    getTags(ws) { return N.getTags(this.#h, wsInternals.handle(ws)); }
    setWebSocketAutoResponse(pair) {
      if (pair === undefined) N.setAutoResponse(this.#h, null, null);
      else N.setAutoResponse(this.#h, pair.request, pair.response);
    }
    getWebSocketAutoResponse() {
      const p = N.getAutoResponse(this.#h);
      return p ? new WebSocketRequestResponsePair(p[0], p[1]) : null;
    }
    getWebSocketAutoResponseTimestamp(ws) { const t = N.getAutoResponseTimestamp(this.#h, wsInternals.handle(ws)); return t === null ? null : new Date(t); }
    setHibernatableWebSocketEventTimeout() {}
    getHibernatableWebSocketEventTimeout() { return null; }
  }
  class DurableObject {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
  }
  class WorkerEntrypoint {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
  }

  // The front Worker's `ctx`, one per request; its methods on the prototype
  // (as in workerd), so that making one is one small object.
  class ExecutionContext {
    waitUntil(p) { Promise.resolve(p).catch((e) => console.error('waitUntil:', e)); }
    passThroughOnException() {}
  }

  // ---- Node.js compatibility (the nodejs_compat flag) ------------------------------
  // node:buffer's Buffer and node:events' EventEmitter, the two modules npm
  // packages written for Workers reach for most; with the flag's v2 (from
  // compatibility date 2024-09-23) Buffer and a small process are globals.
  const nodeModules = {};
  if (N.nodejsCompat || N.nodejsAls) {
    // AsyncLocalStorage over V8's continuation-preserved data: the frame (a
    // Map of storage -> store) in force when a promise reaction is made is
    // in force when it runs, so awaits, timers and queueMicrotask carry it.
    const frame = () => { const f = N.getAsyncContext(); return f instanceof Map ? f : null; };
    const runIn = (f, fn, args) => {
      const before = N.getAsyncContext();
      N.setAsyncContext(f);
      try { return fn(...args); } finally { N.setAsyncContext(before); }
    };
    class AsyncLocalStorage {
      #enabled = true;
      getStore() { const f = frame(); return this.#enabled && f ? f.get(this) : undefined; }
      run(store, fn, ...args) {
        const f = new Map(frame() || undefined);
        f.set(this, store);
        this.#enabled = true;
        return runIn(f, fn, args);
      }
      exit(fn, ...args) {
        const f = new Map(frame() || undefined);
        f.delete(this);
        return runIn(f, fn, args);
      }
      enterWith(store) {
        const f = new Map(frame() || undefined);
        f.set(this, store);
        N.setAsyncContext(f);
      }
      disable() { this.#enabled = false; }
      static bind(fn) { return AsyncLocalStorage.snapshot().bind(null, fn); }
      static snapshot() {
        const f = frame();
        return (fn, ...args) => runIn(f, fn, args);
      }
    }
    nodeModules['node:async_hooks'] = { AsyncLocalStorage, default: { AsyncLocalStorage } };
  }
  if (N.nodejsCompat) {
    const encodingOf = (e) => {
      const x = String(e === undefined || e === null ? 'utf8' : e).toLowerCase();
      if (x === 'utf-8') return 'utf8';
      if (x === 'ucs2' || x === 'ucs-2' || x === 'utf-16le') return 'utf16le';
      if (x === 'binary') return 'latin1';
      if (['utf8', 'hex', 'base64', 'base64url', 'latin1', 'ascii', 'utf16le'].includes(x)) return x;
      throw new TypeError(`Unknown encoding: ${e}`);
    };
    const fromText = (str, encoding) => {
      str = String(str);
      switch (encodingOf(encoding)) {
        case 'utf8': return N.utf8Encode(str);
        case 'hex': {
          const n = Math.floor(str.length / 2);
          const out = new Uint8Array(n);
          let i = 0;
          for (; i < n; ++i) {
            const b = parseInt(str.substr(i * 2, 2), 16);
            if (Number.isNaN(b) || !/^[0-9a-fA-F]{2}$/.test(str.substr(i * 2, 2))) break;
            out[i] = b;
          }
          return out.subarray(0, i);
        }
        case 'base64':
        case 'base64url': {
          const b64 = str.replace(/[^A-Za-z0-9+/\-_]/g, '').replace(/-/g, '+').replace(/_/g, '/');
          const usable = b64.length % 4 === 1 ? b64.slice(0, -1) : b64;
          return unlatin1(atob(usable + '='.repeat((4 - (usable.length % 4)) % 4)));
        }
        case 'latin1': case 'ascii': return unlatin1(str);  // each code unit's low byte
        case 'utf16le': {
          const out = new Uint8Array(str.length * 2);
          for (let i = 0; i < str.length; ++i) { const c = str.charCodeAt(i); out[2 * i] = c & 0xff; out[2 * i + 1] = c >> 8; }
          return out;
        }
      }
    };
    const toText = (bytes, encoding) => {
      switch (encodingOf(encoding)) {
        case 'utf8': return N.utf8Decode(bytes, false);
        case 'hex': return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
        case 'base64': return btoa(latin1(bytes));
        case 'base64url': return btoa(latin1(bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        case 'latin1': return latin1(bytes);
        case 'ascii': return latin1(bytes.map((b) => b & 0x7f));
        case 'utf16le': {
          let out = '';
          for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode(bytes[i] | (bytes[i + 1] << 8));
          return out;
        }
      }
    };
    class Buffer extends Uint8Array {
      static from(value, encodingOrOffset, length) {
        if (typeof value === 'string') return Buffer.#wrap(fromText(value, encodingOrOffset));
        if (value instanceof ArrayBuffer) {
          const offset = encodingOrOffset === undefined ? 0 : Number(encodingOrOffset);
          return new Buffer(value, offset, length === undefined ? value.byteLength - offset : Number(length));
        }
        if (ArrayBuffer.isView(value)) return Buffer.#wrap(new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice());
        if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
        if (value && typeof value === 'object' && typeof value.length === 'number') return Buffer.#wrap(Uint8Array.from(value, (x) => x & 255));
        throw new TypeError('The first argument must be a string, Buffer, ArrayBuffer, Array, or array-like object');
      }
      static #wrap(u8) { return new Buffer(u8.buffer, u8.byteOffset, u8.byteLength); }
      static alloc(size, fill, encoding) {
        const b = new Buffer(Number(size));
        if (fill !== undefined && fill !== 0) b.fill(fill, 0, b.length, encoding);
        return b;
      }
      static allocUnsafe(size) { return new Buffer(Number(size)); }
      static allocUnsafeSlow(size) { return new Buffer(Number(size)); }
      static isBuffer(x) { return x instanceof Buffer; }
      static isEncoding(e) { try { encodingOf(e); return typeof e === 'string'; } catch { return false; } }
      static byteLength(value, encoding) {
        if (typeof value !== 'string') return value.byteLength;
        return fromText(value, encoding).length;
      }
      static concat(list, total) {
        const joined = concatBytes(list.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)));
        const out = Buffer.alloc(total === undefined ? joined.length : Number(total));
        out.set(joined.subarray(0, out.length));
        return out;
      }
      static compare(a, b) {
        const n = Math.min(a.length, b.length);
        for (let i = 0; i < n; ++i) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
        return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
      }
      toString(encoding, start = 0, end = this.length) {
        return toText(this.subarray(Math.max(0, start), Math.min(this.length, end)), encoding);
      }
      toJSON() { return { type: 'Buffer', data: Array.from(this) }; }
      equals(other) { return Buffer.compare(this, other) === 0; }
      compare(other) { return Buffer.compare(this, other); }
      // A view, as Node's slice is (not a copy, as a typed array's is).
      slice(start, end) { return this.subarray(start, end); }
      copy(target, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
        const part = this.subarray(sourceStart, Math.min(sourceEnd, sourceStart + target.length - targetStart));
        target.set(part, targetStart);
        return part.length;
      }
      write(string, offset = 0, length = this.length - offset, encoding = 'utf8') {
        if (typeof offset === 'string') { encoding = offset; offset = 0; length = this.length; }
        else if (typeof length === 'string') { encoding = length; length = this.length - offset; }
        const bytes = fromText(string, encoding).subarray(0, Math.min(length, this.length - offset));
        this.set(bytes, offset);
        return bytes.length;
      }
      fill(value, offset = 0, end = this.length, encoding) {
        if (typeof offset === 'string') { encoding = offset; offset = 0; end = this.length; }
        if (typeof value === 'number') return super.fill(value & 255, offset, end);
        const pattern = typeof value === 'string' ? fromText(value, encoding) : new Uint8Array(toBytes(value));
        if (pattern.length === 0) return super.fill(0, offset, end);
        for (let i = offset; i < end; ++i) this[i] = pattern[(i - offset) % pattern.length];
        return this;
      }
      indexOf(value, byteOffset = 0, encoding) {
        if (typeof value === 'number') return super.indexOf(value & 255, byteOffset);
        const needle = typeof value === 'string' ? fromText(value, encoding) : new Uint8Array(toBytes(value));
        const from = byteOffset < 0 ? Math.max(this.length + byteOffset, 0) : byteOffset;
        for (let i = from; i + needle.length <= this.length; ++i) {
          let j = 0;
          while (j < needle.length && this[i + j] === needle[j]) ++j;
          if (j === needle.length) return i;
        }
        return -1;
      }
      includes(value, byteOffset, encoding) { return this.indexOf(value, byteOffset, encoding) !== -1; }
    }
    // readUInt16LE, writeInt32BE, readDoubleLE, ... (and the readUint*
    // spellings), through a DataView.
    const view = (b) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (const [type, size, get, set] of [
      ['UInt8', 1, 'getUint8', 'setUint8'], ['Int8', 1, 'getInt8', 'setInt8'],
      ['UInt16', 2, 'getUint16', 'setUint16'], ['Int16', 2, 'getInt16', 'setInt16'],
      ['UInt32', 4, 'getUint32', 'setUint32'], ['Int32', 4, 'getInt32', 'setInt32'],
      ['Float', 4, 'getFloat32', 'setFloat32'], ['Double', 8, 'getFloat64', 'setFloat64'],
      ['BigUInt64', 8, 'getBigUint64', 'setBigUint64'], ['BigInt64', 8, 'getBigInt64', 'setBigInt64'],
    ]) {
      for (const order of size === 1 ? [''] : ['LE', 'BE']) {
        const little = order === 'LE';
        const read = function (offset = 0) { return view(this)[get](offset, little); };
        const write = function (value, offset = 0) { view(this)[set](offset, value, little); return offset + size; };
        for (const name of new Set([type, type.replace('UInt', 'Uint')])) {
          Buffer.prototype[`read${name}${order}`] = read;
          Buffer.prototype[`write${name}${order}`] = write;
        }
      }
    }
    const kMaxLength = 2 ** 32 - 1;
    const bufferModule = { Buffer, Blob, File, atob, btoa, kMaxLength, constants: { MAX_LENGTH: kMaxLength } };
    nodeModules['node:buffer'] = { ...bufferModule, default: bufferModule };

    // EventEmitter as a function (old-style subclasses call it with
    // EventEmitter.call(this)).
    function EventEmitter() { EventEmitter.init.call(this); }
    EventEmitter.defaultMaxListeners = 10;
    EventEmitter.init = function () {
      if (!this._events || this._events === Object.getPrototypeOf(this)._events) this._events = Object.create(null);
    };
    const listenersOf = (ee, name, make) => {
      if (!ee._events) ee._events = Object.create(null);
      if (!ee._events[name] && make) ee._events[name] = [];
      return ee._events[name] || [];
    };
    const addListener = (ee, name, fn, prepend) => {
      if (typeof fn !== 'function') throw new TypeError('The "listener" argument must be of type function');
      if (ee._events && ee._events.newListener) ee.emit('newListener', name, fn.listener || fn);
      const list = listenersOf(ee, name, true);
      if (prepend) list.unshift(fn); else list.push(fn);
      return ee;
    };
    const onceWrapper = (ee, name, fn) => {
      const wrapped = function (...args) { ee.removeListener(name, wrapped); return fn.apply(this, args); };
      wrapped.listener = fn;
      return wrapped;
    };
    Object.assign(EventEmitter.prototype, {
      on(name, fn) { return addListener(this, name, fn, false); },
      addListener(name, fn) { return addListener(this, name, fn, false); },
      prependListener(name, fn) { return addListener(this, name, fn, true); },
      once(name, fn) { return addListener(this, name, onceWrapper(this, name, fn), false); },
      prependOnceListener(name, fn) { return addListener(this, name, onceWrapper(this, name, fn), true); },
      off(name, fn) { return this.removeListener(name, fn); },
      removeListener(name, fn) {
        const list = listenersOf(this, name, false);
        const i = list.findIndex((l) => l === fn || l.listener === fn);
        if (i >= 0) {
          list.splice(i, 1);
          if (list.length === 0) delete this._events[name];
          if (this._events.removeListener) this.emit('removeListener', name, fn);
        }
        return this;
      },
      removeAllListeners(name) {
        if (name === undefined) this._events = Object.create(null);
        else if (this._events) delete this._events[name];
        return this;
      },
      emit(name, ...args) {
        const list = listenersOf(this, name, false);
        if (list.length === 0) {
          if (name === 'error') throw args[0] instanceof Error ? args[0] : new Error(`Unhandled error. (${args[0]})`);
          return false;
        }
        for (const fn of [...list]) fn.apply(this, args);
        return true;
      },
      listeners(name) { return listenersOf(this, name, false).map((l) => l.listener || l); },
      rawListeners(name) { return [...listenersOf(this, name, false)]; },
      listenerCount(name) { return listenersOf(this, name, false).length; },
      eventNames() { return this._events ? Reflect.ownKeys(this._events) : []; },
      setMaxListeners(n) { this._maxListeners = n; return this; },
      getMaxListeners() { return this._maxListeners === undefined ? EventEmitter.defaultMaxListeners : this._maxListeners; },
    });
    EventEmitter.EventEmitter = EventEmitter;
    EventEmitter.once = (ee, name) => new Promise((resolve, reject) => {
      const onError = (e) => { ee.removeListener(name, onEvent); reject(e); };
      const onEvent = (...args) => { if (name !== 'error') ee.removeListener('error', onError); resolve(args); };
      ee.once(name, onEvent);
      if (name !== 'error') ee.once('error', onError);
    });
    nodeModules['node:events'] = { EventEmitter, once: EventEmitter.once, default: EventEmitter };


    // A small process: env (the text vars, when the flags say so), nextTick.
    const process = {
      env: N.processEnv, argv: [], platform: 'linux', version: 'v22.0.0', versions: { node: '22.0.0' },
      nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
      cwd: () => '/', emitWarning: (w) => console.warn(String(w)),
    };
    nodeModules['node:process'] = { ...process, default: process };
    // Node's modules answer to their bare names too ("buffer", "events").
    for (const name of Object.keys(nodeModules)) nodeModules[name.slice(5)] = nodeModules[name];

    if (N.nodeGlobals) {
      define('Buffer', Buffer);
      define('process', process);
    }
  }

  return {
    modules: { 'cloudflare:workers': { DurableObject, WorkerEntrypoint, RpcTarget: class RpcTarget {} }, ...nodeModules },
    makeNamespace: (binding) => new DurableObjectNamespace(binding),
    // env: the Worker's own bindings and vars, and any other binding of the
    // server (a C++ class's) on first use.
    wrapEnv: (env) => new Proxy(env, {
      get(target, prop, receiver) {
        if (typeof prop !== 'string' || prop in target) return Reflect.get(target, prop, receiver);
        if (!N.hasNamespace(prop)) return undefined;
        return (target[prop] = new DurableObjectNamespace(prop));
      },
    }),
    makeState: (h, hex, name) => new DurableObjectState(h, hex, name),
    makeRequest: (method, url, flat, body) => new Request(kTrusted, { method, url, flat, body }),
    // [status, flat headers, body, socket]: socket is null, an upgrade box
    // (a stub's 101 passed on), or [server end, hibernate, tags] to accept.
    responseParts(r) {
      if (!(r instanceof Response)) throw new TypeError('the handler must return a Response');
      let socket = null;
      const ws = r.webSocket;
      if (ws) {
        if (r.status !== 101) throw new TypeError('a Response with a webSocket must have status 101');
        const upgrade = wsInternals.upgradeOf(ws);
        if (upgrade) socket = upgrade;
        else {
          const server = wsInternals.peer(ws);
          const accepted = server && wsInternals.accepted(server);
          if (!accepted) throw new TypeError('the 101 response carries a WebSocket whose other end was not accepted (ctx.acceptWebSocket or ws.accept())');
          socket = [server, accepted.hibernate, accepted.tags];
        }
      } else if (r.status === 101) {
        throw new TypeError('a 101 response needs a webSocket');
      }
      let body = r[kBody];
      if (body === kUsed) throw usedBody();
      if (typeof body === 'object' && body instanceof ReadableStream) {
        // A stream is sent whole: at once when it has ended with its chunks
        // queued, else a promise of the response once it has been read
        // (the runtime waits for it and asks again).
        const now = bytesNow(body);
        if (now === null) return readAllBytes(body).then((bytes) => { r[kBody] = bytes; return r; });
        body = r[kBody] = now;
      }
      return [r.status, r.headers._flat(), body, socket];
    },
    // C++ awaits a promise (Vm::PromiseWait): its outcome goes to N.settled.
    waitFor(promise, id) {
      promise.then((v) => N.settled(id, false, v), (e) => N.settled(id, true, e));
    },
    bindSocket: (ws, h) => wsInternals.bind(ws, h),
    boundSocket: (h) => wsInternals.bound(h),
    dispatchSocketEvent(ws, type, a, b, c) {
      if (type === 'message') ws.dispatchEvent(new MessageEvent('message', { data: a }));
      else if (type === 'close') ws.dispatchEvent(new CloseEvent('close', { code: a, reason: b, wasClean: c }));
      else ws.dispatchEvent(new ErrorEvent('error', { message: a, error: new Error(a) }));
    },
    executionContext: () => new ExecutionContext(),
  };
})
