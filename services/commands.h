/* commands.h — every `srlm CMD` subcommand. Each returns the process exit status
 * (0 success, 1 runtime failure, 2 usage error) and handles its own --help.
 * argv[0] is the subcommand name. Owner file in brackets. */
#ifndef SRLM_COMMANDS_H
#define SRLM_COMMANDS_H

int cmd_tokenize(int argc, char **argv);     /* [services/cmd_tokenizer.c] */
int cmd_detokenize(int argc, char **argv);   /* [services/cmd_tokenizer.c] */
int cmd_tokenizer(int argc, char **argv);    /* [services/cmd_tokenizer.c] init-bytes */
int cmd_init(int argc, char **argv);         /* [services/cmd_model.c] */
int cmd_forward(int argc, char **argv);      /* [services/cmd_model.c] */
int cmd_generate(int argc, char **argv);     /* [services/cmd_model.c] */
int cmd_train(int argc, char **argv);        /* [services/cmd_train.c] sft|kd ... */
int cmd_data(int argc, char **argv);         /* [services/cmd_data.c] import|stats|get|export|synth */
int cmd_dataset(int argc, char **argv);      /* [services/cmd_data.c] serve */
int cmd_sandbox(int argc, char **argv);      /* [services/cmd_reward_code.c] run a command sandboxed */
int cmd_reward_code(int argc, char **argv);  /* [services/cmd_reward_code.c] */
int cmd_reward_math(int argc, char **argv);  /* [services/cmd_reward_math.c] */
int cmd_generator(int argc, char **argv);    /* [services/cmd_pipeline.c] */
int cmd_broker(int argc, char **argv);       /* [services/cmd_pipeline.c] */
int cmd_trainer(int argc, char **argv);      /* [services/cmd_pipeline.c] */
int cmd_run(int argc, char **argv);          /* [services/cmd_pipeline.c] launcher */
int cmd_eval(int argc, char **argv);         /* [services/cmd_study.c] */
int cmd_study(int argc, char **argv);        /* [services/cmd_study.c] */

#endif
