# SPDX-License-Identifier: GPL-2.0
# @name@: one C file, built as @name@.ko.
obj-m := @name@.o
