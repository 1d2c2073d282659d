"""The GONG H-alpha network (NSO): stations, file names, archive client, reader."""
