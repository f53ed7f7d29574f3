package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// FileVault keeps values in one AES-256-GCM sealed file for machines without
// a usable keychain (headless Linux, containers, CI). The key is Argon2id of
// a passphrase; the KDF parameters, format and vault id are bound as
// associated data, so a file cannot be swapped between vaults or downgraded
// to weaker parameters without failing authentication.
type FileVault struct {
	path    string
	vaultID string
	key     []byte
	kdf     crypto.KDFParams
}

type fileEnvelope struct {
	Format int              `json:"format"`
	Cipher string           `json:"cipher"`
	KDF    crypto.KDFParams `json:"argon2id"`
	Sealed []byte           `json:"sealed"`
}

const fileVaultFormat = 1

var (
	// ErrWrongPassphrase: the vault passphrase does not open vault.enc.
	ErrWrongPassphrase = errcode.New(errcode.Denied, "the vault passphrase is wrong or vault.enc is corrupted")
	// ErrCorruptVault: vault.enc cannot be parsed at all.
	ErrCorruptVault = errcode.New(errcode.Internal, "vault.enc is corrupt")
)

func (e fileEnvelope) ad(vaultID string) []byte {
	ad, _ := json.Marshal(struct {
		Purpose string           `json:"purpose"`
		Format  int              `json:"format"`
		Cipher  string           `json:"cipher"`
		KDF     crypto.KDFParams `json:"argon2id"`
		VaultID string           `json:"vault_id"`
	}{"agentsecrets vault", e.Format, e.Cipher, e.KDF, vaultID})
	return ad
}

// createFileVault writes an empty vault sealed under passphrase.
func createFileVault(path, vaultID string, passphrase []byte) (*FileVault, error) {
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		return nil, err
	}
	key, err := crypto.DeriveKey(passphrase, kdf)
	if err != nil {
		return nil, err
	}
	v := &FileVault{path: path, vaultID: vaultID, key: key, kdf: kdf}
	if err := v.write(map[string][]byte{}); err != nil {
		return nil, err
	}
	return v, nil
}

// OpenFileVault derives the key and proves it by opening the file once.
// The Store opens its own backend; this is exported for tests that play a
// crashed writer, which need a backend without the Store's checks.
func OpenFileVault(path, vaultID string, passphrase []byte) (*FileVault, error) {
	env, err := readEnvelope(path)
	if err != nil {
		return nil, err
	}
	key, err := crypto.DeriveKey(passphrase, env.KDF)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptVault, err)
	}
	v := &FileVault{path: path, vaultID: vaultID, key: key, kdf: env.KDF}
	if _, err := v.open(env); err != nil {
		return nil, err
	}
	return v, nil
}

func readEnvelope(path string) (fileEnvelope, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fileEnvelope{}, errcode.WithHint(fmt.Errorf("%w: %s is missing", ErrCorruptVault, path), "restore vault.enc from a backup or run `agentsecrets doctor`")
		}
		return fileEnvelope{}, fmt.Errorf("read vault: %w", err)
	}
	var env fileEnvelope
	if err := json.Unmarshal(b, &env); err != nil || env.Format != fileVaultFormat || env.Cipher != "aes-256-gcm" {
		return fileEnvelope{}, ErrCorruptVault
	}
	if err := env.KDF.Validate(); err != nil {
		return fileEnvelope{}, fmt.Errorf("%w: %v", ErrCorruptVault, err)
	}
	return env, nil
}

func (v *FileVault) open(env fileEnvelope) (map[string][]byte, error) {
	plain, err := crypto.Open(v.key, env.Sealed, env.ad(v.vaultID))
	if err != nil {
		return nil, errcode.WithHint(ErrWrongPassphrase, "check the passphrase or the file named by --vault-passphrase-file")
	}
	items := map[string][]byte{}
	err = json.Unmarshal(plain, &items)
	clear(plain)
	if err != nil {
		return nil, ErrCorruptVault
	}
	return items, nil
}

func (v *FileVault) read() (map[string][]byte, error) {
	env, err := readEnvelope(v.path)
	if err != nil {
		return nil, err
	}
	return v.open(env)
}

func (v *FileVault) write(items map[string][]byte) error {
	plain, err := json.Marshal(items)
	if err != nil {
		return err
	}
	env := fileEnvelope{Format: fileVaultFormat, Cipher: "aes-256-gcm", KDF: v.kdf}
	env.Sealed, err = crypto.Seal(v.key, plain, env.ad(v.vaultID))
	clear(plain)
	if err != nil {
		return err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return writeAtomic(v.path, b)
}

func (v *FileVault) Kind() string { return KindFile }

func (v *FileVault) Probe(context.Context) error {
	_, err := v.read()
	return err
}

func (v *FileVault) Get(_ context.Context, key string) (secret.Value, error) {
	items, err := v.read()
	if err != nil {
		return secret.Value{}, err
	}
	defer wipeItems(items)
	val, ok := items[key]
	if !ok {
		return secret.Value{}, ErrValueMissing
	}
	return secret.New(bytes.Clone(val)), nil
}

func (v *FileVault) Put(_ context.Context, put map[string]secret.Value) error {
	items, err := v.read()
	if err != nil {
		return err
	}
	defer wipeItems(items)
	for k, val := range put {
		// A copy: wiping items afterwards must not wipe the caller's value.
		items[k] = bytes.Clone(val.Reveal())
	}
	return v.write(items)
}

// wipeItems zeroes the plaintext of a decrypted vault once it is used.
func wipeItems(items map[string][]byte) {
	for _, v := range items {
		clear(v)
	}
}

func (v *FileVault) Delete(_ context.Context, keys []string) error {
	items, err := v.read()
	if err != nil {
		return err
	}
	defer wipeItems(items)
	changed := false
	for _, k := range keys {
		if _, ok := items[k]; ok {
			delete(items, k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return v.write(items)
}
