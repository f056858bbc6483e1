/*
 * secret_key.c
 *		Loads the keys that encrypt stored secrets from integration.encryption_key_file.
 *
 * When and where.  The setting is PGC_POSTMASTER and the file is read once, by the
 * postmaster, from _PG_init while shared_preload_libraries is processed (the working
 * directory is then the data directory, so a relative path is relative to it).  The
 * keys live in this file's static memory, which every backend and worker inherits when
 * the postmaster forks it: no backend opens the file, and no key ever travels through
 * shared memory, a setting or a log line.  The read buffer is wiped before it is freed.
 *
 * The file.  It must be a regular file owned by the server's OS user with no group or
 * world permission bits (0600 or 0400), as PostgreSQL demands of ssl_key_file; otherwise
 * the server refuses to start, since running on would store secrets unprotected or
 * under a key others can read.  Its content is either exactly 32 bytes (one raw key),
 * or text: one key of 64 hex digits per line, '#' starting a comment, blank lines
 * ignored.  The first key encrypts; every key decrypts.  That is the rotation:
 * a new key is added on the first line, the server restarted, reencrypt_secrets()
 * run, and the old key's line removed at the next restart.
 *
 * Key ids.  Each key is known by the first 4 bytes of SHA-256("integration key id" ||
 * key) in hex, stored with every value it encrypts so that decryption picks the right
 * key.  Four bytes of a hash reveal nothing useful about a 256-bit key, and two keys of
 * one file with the same id are refused.
 */
#include "postgres.h"

#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "secret_key.h"

/* Larger than any sensible key file: 16 keys with comments fit many times over. */
#define KEY_FILE_MAX_BYTES 65536
#define KEY_ID_LABEL "integration key id"

char	   *integration_encryption_key_file = NULL;

static SecretKey secret_keys[SECRET_MAX_KEYS];
static int	secret_nkeys = 0;

void
SecretKeyDefineGucs(void)
{
	DefineCustomStringVariable("integration.encryption_key_file",
							   "File of the keys that encrypt stored endpoint secrets (AES-256-GCM); empty: secrets are stored unencrypted.",
							   "32 raw bytes, or one key of 64 hex digits per line: the first encrypts, all decrypt. Owned by the server's user, mode 0600.",
							   &integration_encryption_key_file, "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
}

/* The id of a key (see the banner). */
static void
key_id(const unsigned char *key, char *id)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	bool		ok;

	ok = md != NULL &&
		EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		EVP_DigestUpdate(md, KEY_ID_LABEL, strlen(KEY_ID_LABEL)) == 1 &&
		EVP_DigestUpdate(md, key, SECRET_KEY_BYTES) == 1 &&
		EVP_DigestFinal_ex(md, digest, &len) == 1 && len >= SECRET_KEY_ID_LEN / 2;
	EVP_MD_CTX_free(md);
	if (!ok)
		ereport(FATAL,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the id of an encryption key")));
	for (int i = 0; i < SECRET_KEY_ID_LEN / 2; i++)
		snprintf(id + 2 * i, 3, "%02x", digest[i]);
	explicit_bzero(digest, sizeof(digest));
}

/* Whether all n bytes of s are hex digits. */
static bool
all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char) s[i]))
			return false;
	return true;
}

/* Adds a key; the file's error when it holds too many or the same one twice. */
static void
add_key(const unsigned char *key, const char *path, int line)
{
	SecretKey  *k;

	if (secret_nkeys == SECRET_MAX_KEYS)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" holds more than %d keys", path, SECRET_MAX_KEYS),
				 errhint("Keep the current key and the keys that stored secrets may still be encrypted with.")));
	k = &secret_keys[secret_nkeys];
	memcpy(k->key, key, SECRET_KEY_BYTES);
	key_id(k->key, k->id);
	for (int i = 0; i < secret_nkeys; i++)
		if (strcmp(secret_keys[i].id, k->id) == 0)
			ereport(FATAL,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("encryption key file \"%s\" holds key %s twice (line %d)", path, k->id, line),
					 errhint("List each key once.")));
	secret_nkeys++;
}

/* Parses the text form: one key of 64 hex digits per line, '#' comments. */
static void
parse_key_lines(char *buf, size_t len, const char *path)
{
	unsigned char key[SECRET_KEY_BYTES];
	size_t		pos = 0;
	int			line = 0;

	while (pos < len)
	{
		size_t		start = pos;
		size_t		end;

		line++;
		while (pos < len && buf[pos] != '\n')
			pos++;
		end = pos++;
		for (size_t i = start; i < end; i++)
			if (buf[i] == '#')
			{
				end = i;
				break;
			}
		while (start < end && (buf[start] == ' ' || buf[start] == '\t' || buf[start] == '\r'))
			start++;
		while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t' || buf[end - 1] == '\r'))
			end--;
		if (start == end)
			continue;
		/* The message never quotes the line: it may be most of a key. */
		if (end - start != 2 * SECRET_KEY_BYTES || !all_hex(buf + start, end - start))
			ereport(FATAL,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("line %d of encryption key file \"%s\" is not a key of 64 hexadecimal digits",
							line, path),
					 errdetail("The file holds either exactly 32 raw bytes (one key), or one key of 64 hexadecimal digits per line; \"#\" starts a comment."),
					 errhint("Make a key with: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'")));
		hex_decode(buf + start, 2 * SECRET_KEY_BYTES, (char *) key);
		add_key(key, path, line);
	}
	explicit_bzero(key, sizeof(key));
}

/* Reads the file into a palloc'd buffer after checking who may read it. */
static char *
read_key_file(const char *path, size_t *len)
{
	struct stat st;
	char	   *buf;
	ssize_t		n;
	int			fd;

	fd = open(path, O_RDONLY | PG_BINARY | O_CLOEXEC, 0);
	if (fd < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not open encryption key file \"%s\": %m", path),
				 errhint("Set integration.encryption_key_file to a file the server's user can read, or to '' to store secrets unencrypted.")));
	if (fstat(fd, &st) != 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not stat encryption key file \"%s\": %m", path)));
	if (!S_ISREG(st.st_mode))
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" is not a regular file", path)));
	if (st.st_uid != geteuid())
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" is not owned by the database server's user", path),
				 errdetail("The file must belong to the operating system user that runs the server."),
				 errhint("Run chown on the file as that user's administrator.")));
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" has group or world access", path),
				 errdetail("Only the server's operating system user may read the keys that protect stored secrets."),
				 errhint("Run chmod 0600 on the file.")));
	if (st.st_size > KEY_FILE_MAX_BYTES)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" is larger than %d bytes", path, KEY_FILE_MAX_BYTES)));

	buf = palloc(st.st_size + 1);
	*len = 0;
	while (*len < (size_t) st.st_size &&
		   (n = read(fd, buf + *len, st.st_size - *len)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			explicit_bzero(buf, st.st_size);
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not read encryption key file \"%s\": %m", path)));
		}
		*len += n;
	}
	close(fd);
	return buf;
}

/*
 * Reads the key file named by integration.encryption_key_file, if any, and says once
 * in the server log whether stored secrets are encrypted.  Every problem with the file
 * stops the server with FATAL.
 */
void
SecretKeyLoad(void)
{
	const char *path = integration_encryption_key_file;
	char	   *buf;
	size_t		len;

	secret_nkeys = 0;
	if (path == NULL || path[0] == '\0')
	{
		if (!IsUnderPostmaster)
			ereport(LOG,
					(errmsg("integration: integration.encryption_key_file is not set, so endpoint secrets are stored unencrypted"),
					 errhint("Set it to a file of 32 random bytes, mode 0600, and restart to encrypt them with AES-256-GCM.")));
		return;
	}

	buf = read_key_file(path, &len);
	if (len == SECRET_KEY_BYTES)
	{
		/*
		 * 32 hex digits would make a raw key of 128 bits from a 256-bit
		 * setting: far more likely a truncated hex key than chance.
		 */
		if (all_hex(buf, len))
			ereport(FATAL,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("encryption key file \"%s\" holds 32 hexadecimal digits", path),
					 errdetail("A key is 64 hexadecimal digits, or exactly 32 raw bytes.")));
		add_key((unsigned char *) buf, path, 1);
	}
	else
		parse_key_lines(buf, len, path);
	explicit_bzero(buf, len);
	pfree(buf);

	if (secret_nkeys == 0)
		ereport(FATAL,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("encryption key file \"%s\" holds no key", path),
				 errhint("Make a key with: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'")));
	if (!IsUnderPostmaster)
		ereport(LOG,
				(errmsg("integration: endpoint secrets are encrypted with key %s (%d %s loaded from \"%s\")",
						secret_keys[0].id, secret_nkeys, secret_nkeys == 1 ? "key" : "keys", path)));
}

const SecretKey *
SecretKeyCurrent(void)
{
	return secret_nkeys > 0 ? &secret_keys[0] : NULL;
}

const SecretKey *
SecretKeyFind(const char *id)
{
	for (int i = 0; i < secret_nkeys; i++)
		if (strcmp(secret_keys[i].id, id) == 0)
			return &secret_keys[i];
	return NULL;
}

int
SecretKeyCount(void)
{
	return secret_nkeys;
}

const SecretKey *
SecretKeyAt(int i)
{
	Assert(i >= 0 && i < secret_nkeys);
	return &secret_keys[i];
}
