/*
 * out.h - what the CLI prints: raw and indented JSON answers, plain-text
 * tables, short cells for JSON values.  Everything goes to stdout; a
 * failure to write is reported ("hora: cannot write output") and returned
 * as CLI_FAILURE.
 */
#ifndef HORA_CLI_OUT_H
#define HORA_CLI_OUT_H

#include <stddef.h>

#include <jansson.h>

#include "cli/client.h"

/* Print the raw answer body to stdout (adding a final newline when it has
 * none); nothing for an empty body.  Returns CLI_OK or CLI_FAILURE when
 * stdout cannot be written. */
int out_print_raw(const client_resp *resp);

/* Print `v` indented by 2 spaces, with a newline. */
int out_print_pretty(const json_t *v);

/*
 * Plain-text tables: columns separated by two spaces, padded to the widest
 * cell, the last column unpadded.  Cells are copied.
 */
typedef struct out_table out_table;

/* NULL on allocation failure.  `ncols` header cells follow. */
out_table *out_table_new(size_t ncols, const char *const *header);
/* Add a row of ncols cells (NULL cells print as "-").  Returns 0 or
 * -HORA_ENOMEM. */
int out_table_add(out_table *t, const char *const *cells);
/* Print to stdout and free the table.  CLI_OK or CLI_FAILURE. */
int out_table_print(out_table *t);
void out_table_free(out_table *t);

/* Short string of a JSON scalar for tables: strings as is, integers and
 * reals in decimal, true/false, NULL (printed "-") for null or absent.
 * The returned pointer is into `buf` or into the JSON value. */
const char *out_json_cell(const json_t *v, char *buf, size_t bufsize);

#endif
