/* cmd_data.c — placeholder until implemented. */
#include <stdio.h>
#include "commands.h"
int cmd_data(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
int cmd_dataset(int argc, char **argv) { (void)argc; fprintf(stderr, "srlm %s: not implemented yet\n", argv[0]); return 1; }
