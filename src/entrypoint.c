// Registers the routines of the Rust binding crate with R.
#include <R_ext/Rdynload.h>

void R_init_mirai_extendr(DllInfo *dll);
void mirai_install_panic_hook(void);

void R_init_mirai(DllInfo *dll) {
  R_init_mirai_extendr(dll);
  mirai_install_panic_hook();
}
