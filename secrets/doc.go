// Package secrets encrypts secret values at rest, rotates the master keys that
// protect them, and redacts secret values from script output.
//
// # Master keys
//
// Secrets are encrypted with AES-256-GCM under a master key held in a
// [Keyring]. The key file has one key per line:
//
//	# comment lines and blank lines are ignored
//	ID:BASE64
//
// ID is 1-32 characters of A-Z a-z 0-9 _ - and names the key; it is stored
// next to every ciphertext so the right key can be found to decrypt it.
// BASE64 is exactly 32 random bytes in standard base64 (44 characters). The
// FIRST key in the file is the primary key: it encrypts new secrets. Every key
// in the file can decrypt. Create a key file with
//
//	cronium secret keygen > /etc/cronium/master.keys && chmod 600 /etc/cronium/master.keys
//
// [LoadKeyring] refuses a key file that is readable by its group or by other
// users. Without a key file, the keys are read from the environment variable
// CRONIUM_MASTER_KEYS in the same format; there, entries may also be separated
// by ';' or ',' so they fit on one line:
//
//	CRONIUM_MASTER_KEYS='k2:BASE64...;k1:BASE64...'
//
// Error messages never contain key material.
//
// # Binding ciphertexts to their owner (AAD)
//
// [Keyring.Seal] and [Keyring.Open] take additional authenticated data (AAD):
// bytes that are not encrypted or stored in the blob, but must be identical
// when decrypting. Callers pass the owner and name of the secret, for example
// "user:42/name:DB_PASSWORD", so a ciphertext copied into another user's row
// or renamed in the database fails to decrypt instead of leaking.
//
// A sealed blob is nonce (12 random bytes) || ciphertext || GCM tag (16 bytes),
// stored together with the id of the key that sealed it.
//
// # Rotating the master key
//
//  1. Generate a new key: cronium secret keygen (give it a new id).
//  2. Put the new key FIRST in the key file, keeping the old key below it.
//     New secrets are now sealed with the new key; old ones still decrypt
//     with the old key.
//  3. Restart, or run the rotation, which calls [Keyring.Rotate] on every
//     stored secret: each one is re-encrypted under the new primary key
//     (secrets already under it are left unchanged).
//  4. Once every secret is under the new key, remove the old key from the file.
//     A secret still sealed under a removed key cannot be decrypted until that
//     key is added back to the keyring.
//
// # Redacting output
//
// Scripts receive secrets as files. If a script prints a secret value,
// package redact replaces it with "***" before the output is stored or
// streamed, even when the value is split across two writes (it lives apart
// so that the agent, which imports only the standard library, can use it).
package secrets
