"""Operations on the stored data as a whole: garbage collection (`gc`) and consistency checks (`fsck`)."""
