/** OpenPGP layer: keys, algorithm checks, segment encryption and detached signatures. */
export { checkRecipients, type CipherSuite } from './algorithms.js';
export { gpgSecretKeyFingerprints, readSessionKeyWithGpg, SESSION_KEY_PREFIX_BYTES, type GpgOptions, type SessionKey } from './gpg-session-key.js';
export { generateAdminKey, generateHostKey, type GeneratedKey } from './keygen.js';
export {
  keyInfo,
  keyMatchesFingerprint,
  readPublicKeyArmored,
  readPublicKeyFile,
  readSecretKeyFile,
  type KeyInfo,
  type PassphraseSource,
} from './keys.js';
export { encryptionRecipients } from './recipients.js';
export { SegmentDecryptor, type DecryptOptions, type SegmentDecryptorOptions } from './segment-decryptor.js';
export { SegmentEncryptor, type EncryptOptions, type SegmentEncryptorOptions } from './segment-encryptor.js';
export { type DecryptedSegment, type EncryptedSegment } from './segment-operations.js';
export { SEGMENT_HEADROOM_BYTES, SEGMENT_TAILROOM_BYTES } from './seipd-writer.js';
export { signDetached, verifyDetached } from './signature.js';
