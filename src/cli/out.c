/* out.c - the CLI's output.  See out.h. */
/* The offline build (HORA_SERVER=OFF) has no jansson. */
#ifndef HORA_CLI_OFFLINE_ONLY

#include "cli/out.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* ---- answers ----------------------------------------------------------- */

static int out_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_fail(CLI_FAILURE, "cannot write output");
	return CLI_OK;
}

int out_print_raw(const client_resp *resp)
{
	if (resp->len > 0) {
		fwrite(resp->body, 1, resp->len, stdout);
		if (resp->body[resp->len - 1] != '\n')
			fputc('\n', stdout);
	}
	return out_flush();
}

int out_print_pretty(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (s == NULL)
		return cli_fail(CLI_FAILURE, "out of memory");
	puts(s);
	hora_free(s);
	return out_flush();
}

/* ---- tables ----------------------------------------------------------- */

struct out_table {
	size_t ncols;
	size_t nrows; /* including the header */
	size_t cap;
	char **cells; /* nrows * ncols, owned */
};

out_table *out_table_new(size_t ncols, const char *const *header)
{
	out_table *t = hora_calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if (out_table_add(t, header) != 0) {
		out_table_free(t);
		return NULL;
	}
	return t;
}

int out_table_add(out_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = hora_realloc(t->cells, cap * t->ncols * sizeof *p);
		if (p == NULL)
			return -HORA_ENOMEM;
		t->cells = p;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = hora_strdup(cells[i] != NULL ? cells[i] : "-");
		if (row[i] == NULL) {
			while (i-- > 0)
				hora_free(row[i]);
			return -HORA_ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

void out_table_free(out_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		hora_free(t->cells[i]);
	hora_free(t->cells);
	hora_free(t);
}

int out_table_print(out_table *t)
{
	size_t *w = hora_calloc(t->ncols, sizeof *w);
	if (w == NULL) {
		out_table_free(t);
		return cli_fail(CLI_FAILURE, "out of memory");
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			if (c + 1 < t->ncols)
				printf("%-*s  ", (int)w[c], cell);
			else
				printf("%s\n", cell);
		}
	}
	hora_free(w);
	out_table_free(t);
	return out_flush();
}

const char *out_json_cell(const json_t *v, char *buf, size_t bufsize)
{
	switch (v == NULL ? JSON_NULL : json_typeof(v)) {
	case JSON_STRING:
		return json_string_value(v);
	case JSON_INTEGER:
		snprintf(buf, bufsize, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, bufsize, "%g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_OBJECT:
	case JSON_ARRAY: {
		char *s = json_dumps(v, JSON_COMPACT);
		if (s == NULL)
			return NULL;
		snprintf(buf, bufsize, "%s", s);
		hora_free(s);
		return buf;
	}
	case JSON_NULL:
	default:
		return NULL;
	}
}

#endif /* HORA_CLI_OFFLINE_ONLY */
